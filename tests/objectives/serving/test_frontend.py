"""The engine's API server in front of each replica (`Scheduler.frontend_ms`): new requests pass one at a time."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from objectives.serving import Dist, PoolCosts, Scheduler, Workload, simulate_costs
from objectives.serving.scheduler import API_SERVER_MS
from tests.objectives.serving.test_serving import COST, AffineCost


def test_a_burst_passes_the_front_end_one_request_at_a_time():
    # 8 requests at t = 0, each held 20 ms in turn: request i reaches the scheduler at (i + 1) x 20 ms, so a prompt
    # that runs alone (the iteration before it is over by then) has its TTFT raised by that much
    fe, inp = 20.0, 64
    w = Workload(rate=float("inf"), input_len=inp, output_len=1, n_requests=8)
    base = simulate_costs(COST, workload=w, scheduler=Scheduler(), per_request=True)
    held = simulate_costs(COST, workload=w, scheduler=Scheduler(frontend_ms=fe), per_request=True)
    alone = COST.prefill_alone_ms(inp)
    assert alone < fe                                           # each prompt is done before the next arrives
    np.testing.assert_allclose(held["ttft_ms"], fe * np.arange(1, 9) + alone, rtol=1e-9)
    assert held["ttft_ms"].mean() > base["ttft_ms"].mean()


def test_the_front_end_caps_the_request_rate_a_replica_takes():
    # 50 ms a request: at most 20 requests/s reach the scheduler, so 40 requests/s pile up in front of it
    w = Workload(rate=40.0, arrival="gamma", cv=1e-3, input_len=32, output_len=4, n_requests=200, seed=1)
    m = simulate_costs(COST, workload=w, scheduler=Scheduler(frontend_ms=50.0))
    assert m["requests_per_s"] == pytest.approx(20.0, rel=0.05)
    assert simulate_costs(COST, workload=w, scheduler=Scheduler())["requests_per_s"] == pytest.approx(40.0, rel=0.05)


def test_only_new_requests_pass_it_not_a_disaggregated_handoff():
    # one request at a time: the front end adds its time once (at the prefill worker), not again when the decode
    # worker takes the prompt's KV
    w = Workload(rate=0.01, input_len=3000, output_len=20, n_requests=3, seed=0)
    kw = dict(mode="disagg", prefill=PoolCosts(COST, 1), decode=PoolCosts(COST, 1), workload=w, kv_link_gbs=2.0,
              per_request=True)
    base = simulate_costs(**kw, scheduler=Scheduler())
    held = simulate_costs(**kw, scheduler=Scheduler(frontend_ms=7.0))
    np.testing.assert_allclose(held["ttft_ms"] - base["ttft_ms"], 7.0, rtol=1e-9)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "5"])
def test_a_bad_front_end_time_is_refused_by_name(bad):
    with pytest.raises((ValueError, TypeError), match="frontend_ms"):
        Scheduler(frontend_ms=bad)


@dataclasses.dataclass(frozen=True)
class FrontCost(AffineCost):
    """The affine cost with an engine's front end, as a measured profile's `StepModel` has one: `front_end_ms` of
    API-server time before the scheduler, inside `ttft_host_ms` (ms)."""

    front_end_ms: float = 30.0
    ttft_host_ms: float = 30.0


FRONT = FrontCost()


def test_the_default_holds_requests_only_where_the_cost_has_an_engines_front_end():
    assert Scheduler().frontend_for(FRONT) == API_SERVER_MS > 0
    assert Scheduler().frontend_for(COST) == 0.0                    # the roofline's cost: no front end
    assert Scheduler(frontend_ms=0.0).frontend_for(FRONT) == 0.0
    assert Scheduler(frontend_ms=7.0).frontend_for(COST) == 7.0


def test_a_request_alone_keeps_its_ttft_the_hold_is_part_of_the_host_time():
    # requests far apart reach an idle engine: the hold moves API_SERVER_MS of the host time before the scheduler
    w = Workload(rate=0.01, input_len=500, output_len=20, n_requests=4, seed=0)
    held = simulate_costs(FRONT, workload=w, scheduler=Scheduler(), per_request=True)
    none = simulate_costs(FRONT, workload=w, scheduler=Scheduler(frontend_ms=0.0), per_request=True)
    np.testing.assert_allclose(held["ttft_ms"], none["ttft_ms"], rtol=1e-9)
    np.testing.assert_allclose(held["e2e_ms"], none["e2e_ms"], rtol=1e-9)
    assert none["ttft_ms"].min() > FRONT.ttft_host_ms               # the host time is in both


def test_a_closed_loop_request_waits_for_the_iteration_its_predecessor_ended_before():
    # 8 clients with outputs of different lengths: a finishing request's client sends its next one at the end of an
    # iteration, where the engine starts the next one at once. Without a front end that request reaches the
    # scheduler exactly on the boundary and joins the iteration that starts there; through the API server it comes
    # API_SERVER_MS later and waits for that iteration (>= COST.fixed ms) to end
    w = Workload(concurrency=8, input_len=200, output_len=Dist("uniform", low=20, high=60), n_requests=400, seed=3)
    held = simulate_costs(FRONT, workload=w, scheduler=Scheduler(), per_request=True)
    none = simulate_costs(FRONT, workload=w, scheduler=Scheduler(frontend_ms=0.0), per_request=True)
    later = held["arrival_s"] > 0                                   # after the start-up wave
    extra = held["ttft_ms"][later].mean() - none["ttft_ms"][later].mean()
    assert extra > 0.5 * FRONT.fixed                                # about one iteration, not the 2 ms hold
    assert held["tpot_ms"].mean() == pytest.approx(none["tpot_ms"].mean(), rel=0.05)


@dataclasses.dataclass(frozen=True)
class StreamCost(AffineCost):
    """The affine cost with an API server that streams each output token in `stream_ms` (`StepModel.stream_ms`)."""

    stream_ms: float = 0.5


def test_a_token_leaves_after_its_iterations_tokens_are_streamed():
    # one request at a time: its first and last tokens each wait for its own token's streaming, so TTFT and the
    # end-to-end latency gain stream_ms and TPOT is unchanged
    w = Workload(rate=0.01, input_len=300, output_len=20, n_requests=4, seed=0)
    s = StreamCost()
    plain = simulate_costs(COST, workload=w, per_request=True)
    streamed = simulate_costs(s, workload=w, per_request=True)
    np.testing.assert_allclose(streamed["ttft_ms"] - plain["ttft_ms"], s.stream_ms, rtol=1e-9)
    np.testing.assert_allclose(streamed["e2e_ms"] - plain["e2e_ms"], s.stream_ms, rtol=1e-9)
    np.testing.assert_allclose(streamed["tpot_ms"], plain["tpot_ms"], rtol=1e-9)


def test_a_loaded_servers_first_token_waits_for_the_batchs_tokens():
    # 32 clients: a first token leaves after about 32 sequences' tokens are streamed (stream_ms each), so the mean
    # TTFT grows by about 32 x stream_ms, and by at most one iteration more: a client's next request, sent once its
    # last token is streamed, reaches the scheduler inside the iteration after and waits for it (`COST.fixed` ms
    # and a little per token). The rate of tokens (TPOT) stays the engine's
    w = Workload(concurrency=32, input_len=200, output_len=Dist("uniform", low=40, high=60), n_requests=640, seed=2)
    s = StreamCost(stream_ms=0.2)
    plain = simulate_costs(COST, workload=w, per_request=True)
    streamed = simulate_costs(s, workload=w, per_request=True)
    extra = streamed["ttft_ms"].mean() - plain["ttft_ms"].mean()
    assert 0.6 * 32 * s.stream_ms < extra < 32 * s.stream_ms + 2 * COST.fixed
    assert streamed["tpot_ms"].mean() == pytest.approx(plain["tpot_ms"].mean(), rel=0.05)


def test_an_api_server_slower_than_the_engine_sets_the_pace_of_the_clients():
    # 16 clients, 2 ms a token: the API server needs 32 ms for a step's tokens, the engine ~9 ms for the step. Its
    # backlog grows until the clients, who send their next requests once their last tokens arrive, pace the engine
    # to it: the run's tokens come at 1 / stream_ms, the wait behind the backlog in each first token's (the engine,
    # running fewer sequences, keeps its own pace: TPOT stays near it)
    w = Workload(concurrency=16, input_len=100, output_len=Dist("uniform", low=80, high=120), n_requests=320, seed=4)
    s = StreamCost(stream_ms=2.0)
    plain = simulate_costs(COST, workload=w)
    slow = simulate_costs(s, workload=w)
    assert plain["throughput_tok_s"] > 2 * 1e3 / s.stream_ms
    assert slow["throughput_tok_s"] == pytest.approx(1e3 / s.stream_ms, rel=0.05)
    assert slow["ttft_ms_mean"] > 20 * plain["ttft_ms_mean"]
    assert slow["tpot_ms_mean"] < 2 * plain["tpot_ms_mean"]
