"""TPOT under a trace's own requests (`ServingModel._trace_tpot`, `trace_decode_tpot`): the decodes stall behind the
prefill work that really arrives during each request's decode."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives import llm_serving_objective, serving
from objectives.serving import traces
from objectives.serving.analytical import TraceLives, slot_admissions, split_lives, trace_decode_tpot


def test_a_request_rides_one_prompt_iteration_and_decodes_in_the_idle_time():
    """Two requests at 0.1 per ms (arrivals 0 and 10 ms): the first (5 ms of prefill, 10 decode steps of 2 ms)
    decodes from 5 ms; the second's prompt (100 ms) runs from 10 to 110 ms as one iteration, which also gives the
    first its token. By hand: 2.5 steps in 5..10 ms, one token on the prompt's iteration, 6.5 steps after 110 ms:
    the life ends at 123 ms, TPOT (123 - 5) / 10 = 11.8 ms (without the prompt 2 ms)."""
    lv = TraceLives(t=np.array([0.0, 1.0]), node=np.zeros(2, dtype=np.int64), frac=np.zeros(2),
                    steps=np.array([10.0, 0.0]), decodes=np.array([True, False]), prompts=np.array([100.0, 1000.0]))
    one = np.ones(1)
    tpot = trace_decode_tpot(lv, 0.1 * one, np.array([[5.0, 100.0]]), 2.0 * one, 0.0 * one, 8192.0 * one,
                             np.zeros(1, dtype=bool), None)
    assert tpot.shape == (1, 1)
    assert tpot[0, 0] == pytest.approx(11.8, abs=1e-9)
    alone = trace_decode_tpot(lv, 0.1 * one, np.array([[5.0, 0.0]]), 2.0 * one, 0.0 * one, 8192.0 * one,
                              np.zeros(1, dtype=bool), None)
    assert alone[0, 0] == pytest.approx(2.0, abs=1e-9)


# three points of the flagship's front (studies/llm_serving.py's space and SLO) with the Azure 2023 conversation
# sample at 4 req/s as the workload (docs/profiles.md, thirty-sixth round)
FRONT = [
    dict(gpu="H200-SXM-141GB", tp=4, weight_dtype="int4", act_dtype="bf16", kv_dtype="bf16", max_batch_size=32,
         max_num_tokens=8192, chunked_prefill=True),
    dict(gpu="B200", tp=2, weight_dtype="int4", act_dtype="bf16", kv_dtype="fp8", max_batch_size=1024,
         max_num_tokens=8192, chunked_prefill=True),
    dict(gpu="MI300X", tp=2, weight_dtype="int8", act_dtype="int8", kv_dtype="fp8", max_batch_size=128,
         max_num_tokens=8192, chunked_prefill=False),
]


def test_trace_tpot_percentiles_match_the_simulator_on_the_flagships_front():
    """p99 TPOT is set by the short-output requests that decode beside a burst of the trace's ~4k-token prompts
    (its last seconds bring five in 1.3 s): the trace replayed as a prefill fluid gives them, where the count of
    independent arrivals in a life (before this round) read 0.56 / 0.62 / 0.71x the simulator's p99 TPOT on these
    three points (mean TPOT 0.97-1.08x). After: p99 0.98 / 1.00 / 1.12x, mean 0.98 / 0.99 / 1.01x."""
    w = serving.Workload(trace=traces.load_sample("azure_conv_2023").to_rate(4.0))
    slo = serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99")
    obj = llm_serving_objective("Llama-3.1-70B", workload=w, slo=slo)
    df = pd.DataFrame([{**c, "pp": 1} for c in FRONT])
    ana = obj(df)
    sim = obj.at_fidelity("simulated")(df)
    for m, tol in (("tpot_ms_p99", 0.15), ("tpot_ms_p90", 0.1), ("tpot_ms", 0.05)):
        r = ana[m].to_numpy(float) / sim[m].to_numpy(float)
        assert np.all(np.abs(r - 1.0) < tol), (m, r)


def test_ranks_split_a_trace_in_arrival_order():
    """Five requests over two ranks: rank 0 replays requests 0, 2, 4 and rank 1 requests 1, 3, padded with a
    request of no prompt and no decode at its last arrival; times in the rank's own mean gaps (t / 2); the decoding
    requests' positions pick each of the trace's once."""
    lv = TraceLives(t=np.arange(5.0), node=np.arange(5), frac=np.full(5, 0.5), steps=np.array([3.0, 0, 1, 2, 4]),
                    decodes=np.array([True, False, True, True, True]), prompts=np.arange(1.0, 6.0))
    sub, cols = split_lives(lv, 2)
    assert sub.t.tolist() == [[0.0, 1.0, 2.0], [0.5, 1.5, 1.5]]
    assert sub.prompts.tolist() == [[1.0, 3.0, 5.0], [2.0, 4.0, 0.0]]
    assert sub.decodes.tolist() == [[True, True, True], [False, True, False]]
    assert sorted(sub.steps.ravel()[cols].tolist()) == sorted(lv.steps[lv.decodes].tolist())
    one, _ = split_lives(lv, 1)
    assert one.t.tolist() == [lv.t.tolist()]


def test_a_trace_per_row_prices_each_row_as_its_own_trace():
    """`trace_decode_tpot` with a trace a row (`split_lives`' layout) gives each row what the same trace replayed
    alone gives, NaN where a request does not decode (the hand-computed case above and its first request alone)."""
    lv = TraceLives(t=np.array([[0.0, 1.0], [0.0, 0.0]]), node=np.zeros((2, 2), dtype=np.int64), frac=np.zeros((2, 2)),
                    steps=np.array([[10.0, 0.0], [10.0, 0.0]]), decodes=np.array([[True, False], [True, False]]),
                    prompts=np.array([[100.0, 1000.0], [100.0, 0.0]]))
    two = np.ones(2)
    tpot = trace_decode_tpot(lv, 0.1 * two, np.array([[5.0, 100.0], [5.0, 0.0]]), 2.0 * two, 0.0 * two,
                             8192.0 * two, np.zeros(2, dtype=bool), None)
    assert tpot[0, 0] == pytest.approx(11.8, abs=1e-9)
    assert tpot[1, 0] == pytest.approx(2.0, abs=1e-9)
    assert np.isnan(tpot[:, 1]).all()


@pytest.mark.parametrize("dp", [2, 4])
def test_replicas_split_the_traces_bursts(dp):
    """dp replicas of the front's H200 point offered the trace at dp x 4 req/s: the least-loaded router sends a
    burst's requests to different replicas, so each sees a share of the burst. Before (each replica replayed the
    whole trace at its 4 req/s) p99 TPOT read 1.38 / 1.47x the simulator's, p90 1.03 / 1.08x, mean 1.03 / 1.05x
    (the dp 1 figures); after 0.98 / 1.01x, 1.01 / 0.98x, 0.98 / 0.99x."""
    w = serving.Workload(trace=traces.load_sample("azure_conv_2023").to_rate(4.0 * dp))
    obj = llm_serving_objective("Llama-3.1-70B", workload=w,
                                slo=serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99"))
    df = pd.DataFrame([{**FRONT[0], "pp": 1, "dp": dp}])
    ana = obj(df)
    sim = obj.at_fidelity("simulated")(df)
    # p99: (the thirty-seventh refit, engine_step_ms 0.25 -> 0.56 ms against profile_layer_us 18.5 -> 13.0 us, moved this agreement: 1.12x at dp 4;
    # the thirty-eighth, 0.56 -> 0.60 ms against 13.0 -> 12.4 us: 1.13x)
    for m, tol in (("tpot_ms_p99", 0.15), ("tpot_ms_p90", 0.05), ("tpot_ms", 0.05)):
        r = float(ana[m].iloc[0]) / float(sim[m].iloc[0])
        assert abs(r - 1.0) < tol, (m, r)


def test_slots_admit_in_arrival_order_as_they_free():
    """Two slots held 10 ms each, requests at 0, 1, 2, 3 and 30 ms: the third takes the first slot freed (10), the
    fourth the second (11), the fifth finds one free; three slots hold none back."""
    arrive = np.array([[0.0, 1.0, 2.0, 3.0, 30.0]])
    hold = np.full((1, 5), 10.0)
    assert slot_admissions(arrive, hold, np.array([2.0])).tolist() == [[0.0, 1.0, 10.0, 11.0, 30.0]]
    assert slot_admissions(arrive, hold, np.array([3.0])).tolist() == [[0.0, 1.0, 2.0, 10.0, 30.0]]


# the trace study's front points with 16 slots (docs/profiles.md, thirty-seventh round)
SIXTEEN = [
    dict(gpu="H200-SXM-141GB", tp=4, weight_dtype="int4", act_dtype="bf16", kv_dtype="bf16", max_batch_size=16,
         max_num_tokens=2048, chunked_prefill=True),
    dict(gpu="B200", tp=2, weight_dtype="int4", act_dtype="bf16", kv_dtype="fp8", max_batch_size=16,
         max_num_tokens=2048, chunked_prefill=True),
]


def test_sixteen_slots_hold_a_bursts_prompts_back_from_the_decodes():
    """With 16 slots a burst's prompts wait for a slot, so they reach the iterations as the decodes they would
    stall leave: the fluid admitting them as the slots free (`slot_admissions`) reads p99 TPOT 0.99 / 1.02x the
    simulator's where the unlimited fluid read 1.20 / 1.18x."""
    w = serving.Workload(trace=traces.load_sample("azure_conv_2023").to_rate(4.0))
    obj = llm_serving_objective("Llama-3.1-70B", workload=w,
                                slo=serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99"))
    df = pd.DataFrame([{**c, "pp": 1} for c in SIXTEEN])
    r = obj(df)["tpot_ms_p99"].to_numpy(float) / obj.at_fidelity("simulated")(df)["tpot_ms_p99"].to_numpy(float)
    assert np.all(np.abs(r - 1.0) < 0.08), r


def test_attention_dp_ranks_in_lockstep_replay_their_replicas_share_together():
    """Qwen3-30B-A3B on four attention-DP ranks (ep 4) at 16 req/s: the ranks step together through the MoE layers,
    so a prompt on any rank stalls every rank's decodes; each rank replays its replica's whole share (a burst's
    prompts together), its group prefilling attn_dp prompts side by side. Giving each rank only its own quarter of
    the prompts (the split over dp x attn_dp) read p99 TPOT 0.79x the simulator's; after 0.98x."""
    w = serving.Workload(trace=traces.load_sample("azure_conv_2023").to_rate(16.0))
    d = serving.Deployments.of(gpu="H200", tp=1, ep=4, attn_dp=4, engine="sglang", max_batch_size=32)
    ana = serving.ServingModel("Qwen/Qwen3-30B-A3B", w).evaluate(d).iloc[0]
    from objectives.serving.simulator import simulate
    sim = simulate("Qwen/Qwen3-30B-A3B", "H200", tp=1, ep=4, attn_dp=4, engine="sglang", workload=w,
                   scheduler=serving.Scheduler(max_batch_size=32))
    for m, s, tol in (("tpot_ms_p99", "tpot_ms_p99", 0.1), ("tpot_ms", "tpot_ms_mean", 0.15)):
        assert abs(float(ana[m]) / float(sim[s]) - 1.0) < tol, (m, float(ana[m]), float(sim[s]))


# Azure: (the thirty-seventh refit, engine_step_ms 0.25 -> 0.56 ms against profile_layer_us 18.5 -> 13.0 us, moved this agreement: 1.11x)
@pytest.mark.parametrize("case", [("azure_conv_2023", 6.0, "tpot_ms_p99", 0.13),
                                  ("mooncake_conversation", 2.0, "tpot_ms", 0.2)])
def test_slots_free_where_their_requests_leave(case):
    """The front's H200 point with 16 slots (8192 tokens a step). A request holds its slot from its admission to its
    departure (before: from its prompt's start, so a request queued behind the prompts admitted before it counted
    its slot free early and more ran than there were slots: Azure at 6 req/s p99 TPOT 1.22x the simulator's), and
    the passes replay on the running mean of the holds until the admissions settle (before: two damped passes,
    which drifted with the count under overload: Mooncake at 2 req/s, the slots binding, mean TPOT 0.49x). After
    (`SLOT_PASSES` 6): 1.07x and 0.96x; the overloaded point does not settle in 6 passes (8: 0.97x and 1.10x) and
    its p99 stays ~4x (the fluid keeps a long prompt's whole stall on the requests beside it)."""
    trace, rate, m, tol = case
    w = serving.Workload(trace=traces.load_sample(trace).to_rate(rate))
    obj = llm_serving_objective("Llama-3.1-70B", workload=w,
                                slo=serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99"))
    df = pd.DataFrame([{**FRONT[0], "pp": 1, "max_batch_size": 16}])
    r = float(obj(df)[m].iloc[0]) / float(obj.at_fidelity("simulated")(df)[m].iloc[0])
    assert abs(r - 1.0) < tol, r
