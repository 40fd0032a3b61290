"""Fewer requests than a replica's attention-DP ranks in the serving simulator: an iteration's routed experts see
the tokens of the ranks that hold work (`StepModel.busy_ranks`, `simulator._couple_ranks`), as
`inference.max_throughput` prices fewer clients than ranks. A lone client's 8k prompt on eight ranks had been
priced as eight prompts meeting at the experts (DeepSeek-R1 fp8, eight B200s, vLLM: 1,287 ms TTFT against
max_throughput's 555)."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import inference, serving
from objectives.inference import StepModel
from objectives.serving.simulator import PoolCosts, simulate_costs

KW = dict(model="deepseek-ai/DeepSeek-R1", gpu="B200", tp=1, attn_dp=8, ep=8, weight_dtype="fp8")
ISL, OSL = 8192, 256


def _sim(c: int, engine: str, **kw) -> dict:
    w = serving.Workload(concurrency=c, input_len=ISL, output_len=OSL, n_requests=max(4 * c, 8),
                         output_spread=0)   # clients in step: c prompts meet at the experts every round
    return serving.simulate(**KW, engine=engine, workload=w, **kw)


@pytest.mark.parametrize("engine", ["vllm", "trtllm"])
def test_a_lone_client_on_eight_ranks_matches_max_throughput(engine):
    m = inference.max_throughput(**KW, engine=engine, input_len=ISL, output_len=OSL, concurrency=1)
    s = _sim(1, engine)
    np.testing.assert_allclose(s["ttft_ms_mean"], m["ttft_ms"].iloc[0], rtol=0.15)
    np.testing.assert_allclose(s["tpot_ms_mean"], m["tpot_ms"].iloc[0], rtol=0.15)
    # and well below the eight prompts at the experts of a client on every rank
    assert s["ttft_ms_mean"] < 0.6 * _sim(8, engine)["ttft_ms_mean"]


def test_more_busy_ranks_never_make_a_prompt_faster():
    ttft = [_sim(c, "vllm")["ttft_ms_mean"] for c in (1, 2, 4, 8)]
    assert all(a < b for a, b in zip(ttft, ttft[1:])), ttft


@pytest.mark.parametrize("c", [8, 16])
def test_a_client_per_rank_is_priced_as_before(c):
    """Every rank busy from the first iteration to the last: the cost's own time_ms, bit for bit (the same
    replicas priced without the coupling: `simulate_costs` on the step model, attn_dp not given)."""
    sched = serving.Scheduler().resolved("vllm", KW["gpu"])    # vLLM's own budgets, as simulate takes them
    sm = StepModel(**KW, engine="vllm", max_num_tokens=sched.max_num_tokens)
    w = serving.Workload(concurrency=c, input_len=ISL, output_len=OSL, n_requests=4 * c, output_spread=0)
    a = serving.simulate(**KW, engine="vllm", workload=w, scheduler=sched)
    # ranks in lockstep are lagged by vLLM's async scheduling at their group's boundaries as a replica alone is at
    # its own (`engine._Replica.enqueue`)
    assert sm.overlap_scheduler
    b = simulate_costs(sm, workload=w, scheduler=sched, dp=8, host_link_gbs=64.0)
    for k in ("ttft_ms_mean", "tpot_ms_mean", "ttft_ms_p99", "tpot_ms_p99", "e2e_ms_mean"):
        assert a[k] == b[k], k
    # the coupling is what moves a lone client: as one replica of eight ranks its prompt meets no other ranks'
    lone = serving.Workload(concurrency=1, input_len=ISL, output_len=OSL, n_requests=2)
    free = simulate_costs(sm, workload=lone, scheduler=sched, dp=8)
    ranked = simulate_costs(sm, workload=lone, scheduler=sched, attn_dp=8)
    assert ranked["ttft_ms_mean"] < 0.6 * free["ttft_ms_mean"]


def test_busy_ranks_prices_only_the_busy_ranks_tokens_at_the_experts():
    sm = StepModel(**KW, engine="vllm")
    assert sm.busy_ranks(8) is sm and sm.busy_ranks(9) is sm
    one = sm.busy_ranks(1)
    assert sm.busy_ranks(1) is one                       # prepared once
    pairs = ISL * (ISL + 1) / 2
    full, lone = sm.time_ms(ISL, pairs, 0, 0), one.time_ms(ISL, pairs, 0, 0)
    assert lone < 0.6 * full
    assert one.time_ms(0, 0, 1, ISL) <= sm.time_ms(0, 0, 1, ISL)
    four = sm.busy_ranks(4).time_ms(ISL, pairs, 0, 0)
    assert lone < four < full
    # the same prompt through `estimate` with one rank's tokens at the experts
    est = inference.estimate(**KW, engine="vllm", batch_size=1, input_len=ISL, output_len=1, moe_dp=1.0)
    np.testing.assert_allclose(lone, est["ttft_ms"].iloc[0], rtol=1e-9)
    # its breakdown explains the same iteration
    np.testing.assert_allclose(sum(one.breakdown(ISL, pairs, 0, 0).values()), lone, rtol=1e-9)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="busy_ranks busy="):
            sm.busy_ranks(bad)


def test_a_replica_without_attention_dp_is_its_own_busy_model():
    sm = StepModel("Qwen/Qwen3-30B-A3B", "H200", tp=2)
    assert sm.attn_dp == 1 and sm.busy_ranks(1) is sm


def test_pool_attn_dp_must_divide_the_workers():
    sm = StepModel(**KW, engine="vllm")
    with pytest.raises(ValueError, match="attn_dp=3"):
        PoolCosts(sm, 8, attn_dp=3)
    with pytest.raises(ValueError, match="attn_dp=0"):
        PoolCosts(sm, 8, attn_dp=0)
    with pytest.raises(ValueError, match="attn_dp=0"):
        simulate_costs(sm, workload=serving.Workload(concurrency=1, n_requests=1), attn_dp=0)
    # the replicas and ranks of simulate_costs, simulate and steady_state: one check, one message
    w = serving.Workload(concurrency=1, n_requests=1, input_len=128, output_len=8)
    for call in (lambda **k: simulate_costs(sm, workload=w, **k),
                 lambda **k: serving.simulate("Llama-3.1-8B", "H100", workload=w, **k)):
        for bad in (0, True, 1.5):
            with pytest.raises(ValueError, match=rf"^dp={bad!r}: must be an integer >= 1 \(replicas\)$"):
                call(dp=bad)
        with pytest.raises(ValueError, match=r"^attn_dp=True: must be an integer >= 1 \(attention data-parallel"):
            call(attn_dp=True)
    with pytest.raises(ValueError, match=r"^dp=0: must be an integer >= 1 \(replicas\)$"):
        serving.steady_state("Llama-3.1-8B", "H100", workload=w, dp=0)


def test_disaggregated_prefill_ranks_see_their_own_busy_count():
    """A prefill pool of one worker with attention DP 8: a lone client's prompt reaches the experts alone."""
    w = serving.Workload(concurrency=1, input_len=ISL, output_len=OSL, n_requests=4)
    pool = serving.Pool(gpu="B200", tp=1, ep=8, attn_dp=8)
    one = serving.simulate(**KW, engine="vllm", workload=w, mode="disagg", prefill=pool, decode=pool)
    w8 = serving.Workload(concurrency=8, input_len=ISL, output_len=OSL, n_requests=16)
    eight = serving.simulate(**KW, engine="vllm", workload=w8, mode="disagg", prefill=pool, decode=pool)
    assert one["ttft_ms_mean"] < 0.6 * eight["ttft_ms_mean"]
