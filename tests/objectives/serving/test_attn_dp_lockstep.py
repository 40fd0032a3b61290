"""Attention-DP ranks of one replica step in lockstep in the serving simulator (`engine._Group`,
`simulator._couple_ranks`): a step starts on every rank together and lasts as long as the slowest rank's, so one
rank's prompt stalls the other ranks' decodes; an idle rank waits for the group's next step; a decode segment of the
group ends at the first rank's change. A cost whose ``steps_in_lockstep`` is False (a dense model) keeps its ranks
apart."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from objectives import serving
from objectives.inference import StepModel
from objectives.serving import PoolCosts, Scheduler, Workload, simulate_costs
from objectives.serving.simulator import _frame, _run
from tests.objectives.serving.test_serving import AffineCost


@dataclass(frozen=True)
class Affine(AffineCost):
    """`AffineCost`, saying whether its attention-DP ranks step together."""

    steps_in_lockstep: bool = True


LOCK, APART = Affine(), Affine(steps_in_lockstep=False)
LONG = 4000


def _pair(cost: Affine) -> pd.DataFrame:
    """A short prompt decoding 60 tokens on rank 0; at 100 ms a long prompt (2 output tokens) on rank 1."""
    trace = pd.DataFrame({"arrival_s": [0.0, 0.1], "input_tokens": [16, LONG], "output_tokens": [60, 2]})
    return simulate_costs(cost, workload=Workload(trace=trace), attn_dp=2, per_request=True)


def test_a_rank_prefilling_stalls_the_other_ranks_decodes():
    lock, apart = _pair(LOCK), _pair(APART)
    assert list(lock["replica"]) == [0, 1] == list(apart["replica"])
    prefill = LOCK.time_ms(LONG, LONG * (LONG + 1) / 2, 0, 0)
    # the decoding request's step that meets the long prompt lasts the prompt's step, not its own decode step, and
    # the next one the long request's decode step (its 4k context)
    a0, a1 = apart["e2e_ms"].iloc[0], lock["e2e_ms"].iloc[0]
    one_decode = LOCK.time_ms(0, 0, 1, 16 + 20)      # ~ its decode step at that context (8.02 ms)
    np.testing.assert_allclose(a1 - a0, prefill - one_decode + LOCK.time_ms(0, 0, 1, LONG + 1) - one_decode,
                               atol=0.005)
    assert a1 > a0 + 200.0
    # the long prompt waits at most one decode step for the group's next step to start
    t0, t1 = apart["ttft_ms"].iloc[1], lock["ttft_ms"].iloc[1]
    assert t0 <= t1 <= t0 + one_decode + 1e-6
    # ranks apart: rank 0's request runs as if alone
    alone = simulate_costs(LOCK, workload=Workload(trace=pd.DataFrame(
        {"arrival_s": [0.0], "input_tokens": [16], "output_tokens": [60]})), per_request=True)
    assert apart["e2e_ms"].iloc[0] == alone["e2e_ms"].iloc[0]


def _frames(cost: Affine, attn_dp: int, skip: bool, w: Workload) -> pd.DataFrame:
    s = Scheduler(max_num_tokens=2048)
    eng, reps = _run(w, PoolCosts(cost, 2 * attn_dp, s, attn_dp=attn_dp), None, None, s, 0.0, "least_loaded",
                     skip=skip)
    return _frame(eng, reps)


@pytest.mark.parametrize("attn_dp", [2, 4])
def test_group_decode_segments_equal_stepping_every_iteration(attn_dp):
    """The group's closed-form decode segments (each iteration the slowest rank's, cut at any rank's arrival)
    reproduce the same engine stepping one iteration at a time."""
    w = Workload(rate=40.0, n_requests=160, seed=3, input_len=serving.Dist("uniform", low=100, high=3000),
                 output_len=serving.Dist("uniform", low=20, high=300))
    seg, step = _frames(LOCK, attn_dp, True, w), _frames(LOCK, attn_dp, False, w)
    for k in ("first_token_s", "finish_s"):
        np.testing.assert_allclose(seg[k], step[k], rtol=2e-4)
    # and lockstep moved them (the same workload with the ranks apart)
    apart = _frames(APART, attn_dp, True, w)
    assert (apart["tpot_ms"] < seg["tpot_ms"] - 1e-9).mean() > 0.5


def test_ranks_that_only_decode_keep_their_segments_and_times():
    """Equal requests on every rank: the ranks' schedules coincide, lockstep changes nothing (bit for bit), and the
    group still advances its decodes in multi-iteration segments."""
    w = Workload(concurrency=4, n_requests=8, input_len=512, output_len=200, output_spread=0)
    s = Scheduler()
    lock = _run(w, PoolCosts(LOCK, 4, s, attn_dp=4), None, None, s, 0.0, "least_loaded")[0]
    apart = _run(w, PoolCosts(APART, 4, s, attn_dp=4), None, None, s, 0.0, "least_loaded")[0]
    pd.testing.assert_frame_equal(_frame(lock), _frame(apart))
    assert max(k for _, k, _, _ in lock.segs) > 100


def test_one_rank_per_replica_forms_no_group():
    w = Workload(concurrency=3, n_requests=12, input_len=300, output_len=40)
    s = Scheduler()
    eng, reps = _run(w, PoolCosts(LOCK, 2, s), None, None, s, 0.0, "least_loaded")
    assert all(r.group is None and r.tm == r.cost.time_ms for r in reps)    # no coupling: the cost's own price
    eng2, reps2 = _run(w, PoolCosts(LOCK, 2, s, attn_dp=2), None, None, s, 0.0, "least_loaded")
    assert reps2[0].group is reps2[1].group is not None


KW = dict(model="deepseek-ai/DeepSeek-R1", gpu="B200", tp=1, ep=8, weight_dtype="fp8", engine="vllm")


def test_step_models_say_which_ranks_step_together():
    assert StepModel(**KW, attn_dp=8).steps_in_lockstep
    assert not StepModel(**{**KW, "tp": 8}, attn_dp=1).steps_in_lockstep
    assert not StepModel("Llama-3.1-8B", "H100", tp=1, attn_dp=2).steps_in_lockstep


def test_a_prompt_beside_decoding_ranks_is_priced_with_the_tokens_at_the_experts():
    """On eight DeepSeek-R1 ranks, one rank's 4k prompt while another decodes: the group step lies between the
    prompt alone at the experts (busy_ranks(1)) and two such prompts (busy_ranks(2)), near the former."""
    trace = pd.DataFrame({"arrival_s": [0.0, 0.5], "input_tokens": [16, LONG], "output_tokens": [400, 2]})
    w = Workload(trace=trace)
    sm = StepModel(**KW, attn_dp=8)
    lock = serving.simulate_requests(**KW, attn_dp=8, workload=w)
    solo = serving.simulate_requests(**KW, attn_dp=8, workload=Workload(trace=trace.iloc[:1]))
    pairs = LONG * (LONG + 1) / 2
    one, two = sm.busy_ranks(1).time_ms(LONG, pairs, 0, 0), sm.busy_ranks(2).time_ms(LONG, pairs, 0, 0)
    stall = lock["e2e_ms"].iloc[0] - solo["e2e_ms"].iloc[0]      # the long step less the decode step it replaced
    dec = sm.busy_ranks(2).time_ms(0, 0, 1, 16 + 100)
    assert 0.95 * one - dec < stall < 0.5 * (one + two) - dec, (one, two, stall)


def test_a_pool_keeps_its_prices_bit_for_bit(monkeypatch):
    """`_couple_ranks` keeps each pool's prices by (busy ranks, iteration): a group reprices every rank at each step
    and its segments end where the last one did, so most prices recur. Kept or computed afresh (a memo of one entry,
    `PRICE_MEMO_ENTRIES`), the per-request times are the same floats, and the kept prices spare most of the step
    model's calls."""
    from objectives.serving import simulator

    calls = [0]
    time_ms = StepModel.time_ms

    def counted(self, *a, **k):
        calls[0] += 1
        return time_ms(self, *a, **k)

    monkeypatch.setattr(StepModel, "time_ms", counted)
    w = Workload(concurrency=16, input_len=512, output_len=512, n_requests=64)

    def run() -> tuple[pd.DataFrame, int]:
        calls[0] = 0
        return serving.simulate_requests(**KW, attn_dp=8, workload=w), calls[0]

    kept, n_kept = run()
    monkeypatch.setattr(simulator, "PRICE_MEMO_ENTRIES", 1)
    fresh, n_fresh = run()
    pd.testing.assert_frame_equal(kept, fresh, check_exact=True)
    assert n_kept < 0.5 * n_fresh, (n_kept, n_fresh)
