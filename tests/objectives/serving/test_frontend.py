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
    # iteration (no host time after the schedule: a client sends once it has read the last token, `_ClientReads`),
    # where the engine starts the next one at once. Without a front end that request reaches the scheduler exactly
    # on the boundary and joins the iteration that starts there; through the API server it comes API_SERVER_MS
    # later and waits for that iteration (>= COST.fixed ms) to end
    w = Workload(concurrency=8, input_len=200, output_len=Dist("uniform", low=20, high=60), n_requests=400, seed=3)
    cost = dataclasses.replace(FRONT, ttft_host_ms=0.0)
    held = simulate_costs(cost, workload=w, scheduler=Scheduler(), per_request=True)
    none = simulate_costs(cost, workload=w, scheduler=Scheduler(frontend_ms=0.0), per_request=True)
    later = held["arrival_s"] > 0                                   # after the start-up wave
    extra = held["ttft_ms"][later].mean() - none["ttft_ms"][later].mean()
    assert extra > 0.5 * FRONT.fixed                                # about one iteration, not the 2 ms hold
    assert held["tpot_ms"].mean() == pytest.approx(none["tpot_ms"].mean(), rel=0.05)


@dataclasses.dataclass(frozen=True)
class StreamCost(FrontCost):
    """`FrontCost` whose API server also spends `stream_ms` per stream it handles as a first token goes out, one
    API server for every two replicas (`simulator._frame`)."""

    stream_ms: float = 1.5
    stream_ranks: int = 2


@pytest.mark.parametrize("cost,workers", [(FRONT, 1), (StreamCost(), 4)])
def test_a_closed_loop_client_sends_its_next_request_once_it_has_read_the_last_token(cost, workers):
    # the host time delays a request's tokens after the GPU's schedule (`_frame`): its client has its last token
    # at finish_s, and sends the next one then, not at the GPU's finish (here 28 ms earlier: 30 ms of host time,
    # 2 of it the API server's hold inside the engine; plus 1.5 ms per stream at its first token)
    c, n = 12, 300
    w = Workload(concurrency=c, input_len=Dist("uniform", low=100, high=400), output_len=Dist("uniform", low=5, high=40),
                 n_requests=n, seed=2)
    d = simulate_costs(cost, dp=workers, workload=w, scheduler=Scheduler(), per_request=True)
    sent = np.sort(d["arrival_s"].to_numpy())
    read = np.sort(d["finish_s"].to_numpy())
    np.testing.assert_array_equal(sent[:c], 0.0)
    np.testing.assert_allclose(sent[c:], read[:n - c], rtol=0, atol=1e-9)


def test_fewer_clients_than_slots_obey_littles_law_with_the_host_time_in_their_cycle():
    # 4 clients, a slot each: their requests/s are 4 / the e2e they see, 300 ms of which is host time the GPU idles
    # through (the clients, not the GPU, set the rate); it had been 4 / (e2e - 300 ms)
    cost = dataclasses.replace(FRONT, ttft_host_ms=300.0)
    w = Workload(concurrency=4, input_len=200, output_len=50, n_requests=400, seed=0)
    d = simulate_costs(cost, workload=w, scheduler=Scheduler(), per_request=True)
    m = simulate_costs(cost, workload=w, scheduler=Scheduler())
    assert m["requests_per_s"] * d["e2e_ms"].mean() / 1e3 == pytest.approx(4.0, rel=0.02)
