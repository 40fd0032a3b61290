"""Attention-DP ranks in lockstep (`estimate.rank_wait_s`): a step lasts as long as its slowest rank's forward, so
each rank also waits for the other ranks' prompt chunks, by how much the slowest rank's prompts exceed its own as the
clients send them (`lockstep`: the closed loop's waves, requests arriving apart, TensorRT-LLM's attention-DP balance);
and vLLM's all-gather + reduce-scatter is priced on the profiles' own all-gather and reduce-scatter tables over its DP
group (`measured._gather_scatter`)."""
from __future__ import annotations

from dataclasses import replace
from math import factorial

import numpy as np
import pytest

from objectives import inference, profiles
from objectives.inference.core import prepare
from objectives.inference.estimate import rank_wait_s, split_work, steady_cycle, steady_state, steady_work
from objectives.inference.lockstep import (
    AdpBalance,
    _balance_rounds,
    _overflow,
    arrival_rates,
    balance_ttft,
    overlap_factor,
    release_moments,
    release_period,
    slowest_rank_excess,
)
from objectives.inference.measured import M_GRID, _gather_scatter

MODEL = "Qwen3-30B-A3B"       # 128 experts, top-8


def _prepared(attn_dp: int = 2, ep: int = 2, tp: int = 1, engine: str = "vllm", moe_dp: float | None = None):
    p = prepare(MODEL, "H200-SXM-141GB", tp, 1, None, None, None, 1, ep, None, None, engine=engine, attn_dp=attn_dp,
                moe_dp=moe_dp)
    assert p is not None
    return p


@pytest.mark.parametrize("R", [2, 4, 8])
@pytest.mark.parametrize("overlap", [0.05, 1.0, 6.0])
def test_the_wait_is_the_overlap_times_what_a_lone_chunk_adds_beyond_its_tokens_at_the_experts(R, overlap):
    """A step lasts the decode step, plus the slowest rank's own prompt tokens at the lone chunk's rate beyond the
    experts, plus every rank's tokens at the experts: per own full chunk the rank waits `overlap` x (t_one - d -
    t_dec), d = (t_all - t_one) / (R - 1)."""
    p = _prepared(attn_dp=R, ep=R)
    p = replace(p, solo=p.coeffs, coeffs=replace(p.coeffs, moe_ranks=float(R)))
    t_all, t_one, t_dec = 0.200, 0.150, 0.020
    lone = t_one - (t_all - t_one) / (R - 1) - t_dec
    assert rank_wait_s(p, t_all, t_one, t_dec, overlap) == pytest.approx(overlap * lone, rel=1e-12)


def _slowest_by_enumeration(lam: float, g: float, R: int, top: int = 40) -> float:
    """E[min(max of R Poisson(lam), g)] / E[min(Poisson(lam), g)] - 1, by summing over every joint count."""
    pmf = np.array([np.exp(-lam) * lam ** n / factorial(n) for n in range(top)])
    cdf = np.cumsum(pmf)
    cap = np.minimum(np.arange(top), g)
    pmax = np.diff(cdf ** R, prepend=0.0)          # P(max = n)
    return float(np.sum(pmax * cap) / np.sum(pmf * cap) - 1.0)


@pytest.mark.parametrize("lam", [0.01, 0.3, 2.0, 9.0])
@pytest.mark.parametrize("g", [1.0, 2.5, 8.0])
@pytest.mark.parametrize("R", [2, 3, 32])
def test_the_slowest_ranks_excess_is_its_expected_prompts_over_a_ranks_own(lam, g, R):
    assert slowest_rank_excess(lam, g, R) == pytest.approx(_slowest_by_enumeration(lam, g, R), rel=1e-9, abs=1e-12)


def test_a_prompt_longer_than_the_budget_counts_in_full_chunks():
    """g < 1: each prompt is 1 / g full chunks, lam / g chunks a step, at most one a step (Bernoulli-like)."""
    p = -np.expm1(-0.01 / 0.25)
    assert slowest_rank_excess(0.01, 0.25, 4) == pytest.approx((1 - (1 - p) ** 4) / p - 1, rel=1e-9)


def test_the_overlap_between_aligned_and_independent_ranks():
    """Prompts far apart on R ranks never meet (overlap R - 1); a full chunk on every rank every step always does
    (0); the closed loop's waves meet more than requests arriving apart; exact lengths keep every round aligned."""
    assert slowest_rank_excess(1e-7, 8, 32) == pytest.approx(31.0, rel=1e-5)
    assert slowest_rank_excess(400.0, 8, 32) == pytest.approx(0.0, abs=1e-9)
    args = (32, 64, 1024, 1024, 8192, 1024)
    waves, apart = overlap_factor(*args), overlap_factor(*args, apart=True)
    assert 0.0 < waves < apart < 31.0
    assert overlap_factor(*args, spread=0.0) == 0.0
    assert overlap_factor(*args, spread=0.1) > waves          # wider drifts spread the waves
    assert overlap_factor(*args, rounds=30) > waves           # and so do longer runs
    # the first round (all prompts at once) counts as aligned: one round is no wait
    assert overlap_factor(*args, rounds=1) == 0.0
    # TensorRT-LLM's attention-DP balance lines the ranks' prompts up
    assert overlap_factor(*args, balance=AdpBalance()) < 0.1 * waves
    assert overlap_factor(*args, apart=True, balance=AdpBalance()) < 0.2 * apart


def test_the_balance_releases_at_the_timeout_or_after_every_rank_has_a_prompt():
    b = AdpBalance()
    assert float(release_period(1e-6, 8, b)) == pytest.approx(50.0, rel=1e-4)
    assert float(release_period(50.0, 8, b)) == pytest.approx(1.0 + 10.0, rel=1e-9)
    assert 11.0 < float(release_period(0.3, 8, b)) < 50.0


def test_the_balance_periods_second_moment_weighs_the_timeout_periods_a_prompt_more_likely_arrives_in():
    """A prompt arriving at a steady rate waits E[P^2] / (2 E[P]) (the rest of the period it arrives in): half the
    period where every period is as long (every release at the timeout, or every one batching_wait_iters after all
    ranks have a prompt), more than half the mean where short and timeout periods mix."""
    b = AdpBalance()
    for lam in (1e-6, 50.0):
        mean, square = release_moments(lam, 8, b)
        assert float(square) == pytest.approx(float(mean) ** 2, rel=1e-3)
    mean, square = release_moments(0.15, 8, b)
    assert float(mean) == pytest.approx(float(release_period(0.15, 8, b)), rel=1e-12)
    assert float(square) > 1.05 * float(mean) ** 2
    assert float(release_moments(0.05, 8, AdpBalance(timeout_iters=1))[1]) == 1.0


def test_the_balance_spreads_the_closed_loops_rounds_as_it_holds_the_first_rounds_chunks():
    """Each of the first round's chunks waits batching_wait_iters more under the balance, so the later rounds'
    prompts reach a rank spread as wide: lower rates, and a shorter hold at a load whose every round the budget
    drains only chunk by chunk (128 clients a rank, 1k prompts, 8k-token budget: 16 chunks). Every iteration
    priced 1 (t_full = t_dec), `balance_ttft` counts the iterations from a prompt's arrival to its first token."""
    args = (128, 1024, 1024, 8192, 1024)
    assert np.all(arrival_rates(*args, chunk_steps=11.0) < arrival_rates(*args))
    hold = float(balance_ttft(4, *args, 1.0, 1.0, balance=AdpBalance())) - 1.0
    assert 10.0 < hold < 35.0                  # the simulator's: ~20 iterations (test_adp_balance)
    cut = AdpBalance(batching_wait_iters=0)    # nothing held between chunks: the rounds as without the balance
    assert float(balance_ttft(4, *args, 1.0, 1.0, balance=cut)) - 1.0 < 0.5 * hold


def test_the_holds_spread_the_next_rounds_arrivals_further():
    """A round's holds add their spread to the next round's arrivals as the outputs' drift does: from the third
    round on the prompts reach a rank at a lower rate than the first round's chunks and the drift alone give (the
    simulator, 8 ranks x 32 clients, 1k / 1k: windows of 60 -> 216 iterations over rounds 2-10)."""
    args = (32, 1024, 1024, 8192, 1024)
    drift = arrival_rates(*args, chunk_steps=11.0)
    lam = _balance_rounds(8, *args, False, 0.02, 10, AdpBalance())[0]
    assert lam[0] == pytest.approx(drift[0], rel=1e-12)
    assert np.all(lam[1:] < drift[1:]) and 32.0 / lam[-1] > 1.15 * 32.0 / drift[-1]


def test_a_releases_prompts_beyond_its_chunk_wait_for_the_next_releases():
    """n ~ Poisson(mu) prompts between two releases, g a release: the i-th waits floor(i / g) releases more. One a
    release: E[n (n - 1) / 2] / mu = mu / 2; a chunk that holds them all: none; a prompt of two chunks counts as
    two prompts of one."""
    assert float(_overflow(3.0, 1.0)) == pytest.approx(1.5, rel=1e-9)
    n = np.arange(60.0)
    pmf = np.array([np.exp(-2.5) * 2.5 ** k / factorial(int(k)) for k in n])
    brute = sum(p * sum(i // 2 for i in range(int(k))) for p, k in zip(pmf, n)) / 2.5
    assert float(_overflow(2.5, 2.0)) == pytest.approx(brute, rel=1e-9)
    assert float(_overflow(0.5, 64.0)) < 1e-12
    assert float(_overflow(1.5, 0.5)) == pytest.approx(float(_overflow(3.0, 1.0)), rel=1e-9)


def test_the_first_rounds_releases_each_run_a_full_chunk_after_batching_wait_iters_decode_steps():
    """A closed loop's first round (all 32 prompts a rank at once, 8 a full chunk): its first release at once,
    the three others batching_wait_iters decode steps apart; the mean prompt waits 1.5 of them, each release a
    full chunk's iteration (0.5 s here, decode steps 20 ms)."""
    got = balance_ttft(8, 32, 1024, 1024, 8192, 1024, 0.5, 0.02, balance=AdpBalance(), rounds=1)
    assert float(got) == pytest.approx(0.5 + 1.5 * (10 * 0.02 + 0.5), rel=1e-12)


def test_a_release_runs_its_share_of_a_full_chunk_and_a_drain_longer_than_the_cycle_queues_every_prompt():
    """The release iteration costs the decode step plus the share of a full chunk it runs (more prompts a rank, a
    longer release); where a round's N / g releases, one every batching_wait_iters + 1 iterations, outlast the
    cycle's n_it, every prompt waits that much behind the standing queue (8k prompts, one a chunk, 128 a rank:
    1,408 iterations against 1,024)."""
    b = AdpBalance()
    light, busy = (balance_ttft(8, N, 1024, 1024, 8192, 1024, 0.5, 0.02, apart=True, balance=b) for N in (8, 32))
    assert 0.02 < float(light) < float(busy)
    assert float(balance_ttft(8, 32, 1024, 1024, 8192, 1024, 0.6, 0.02, apart=True, balance=b)) > float(busy)
    drained = float(balance_ttft(8, 128, 8192, 1024, 8192, 1024, 1.0, 1.0, apart=True, balance=b))
    assert drained > 128 * 11 - 1024


def test_no_wait_for_one_rank_a_dense_row_or_without_the_solo_coefficients():
    p = _prepared(attn_dp=2, ep=2)
    assert rank_wait_s(p, 0.2, 0.15, 0.02, 0.1) == 0.0                      # solo unset
    one = replace(p, solo=p.coeffs, coeffs=replace(p.coeffs, moe_ranks=1.0))
    assert rank_wait_s(one, 0.2, 0.15, 0.02, 0.1) == 0.0                    # a lone busy rank
    dense = replace(p, solo=p.coeffs, coeffs=replace(p.coeffs, n_experts=0.0))
    assert rank_wait_s(dense, 0.2, 0.15, 0.02, 0.1) == 0.0
    two = replace(p, solo=p.coeffs)
    assert rank_wait_s(two, 0.2, 0.15, 0.02, 0.1) > 0.0
    # a lone chunk that adds nothing beyond its tokens at the experts makes nobody wait (never negative)
    assert rank_wait_s(two, 0.2, 0.1, 0.1, 0.1) == 0.0


def test_max_throughput_adds_the_wait_to_the_attention_dp_rows_and_leaves_the_others_alone():
    """The prompt-heavy steady state (8k prompts, 1k outputs, as many clients per rank as its KV cache holds at the
    end of their waves; more would add vLLM's preemptions, `admission.preemption_churn` and `wave_overflow`): the
    lockstep cycle is the one `steady_state` prices without the solo coefficients plus the wait; tp-only rows are
    bit-for-bit the same."""
    isl, osl, mnt = 8192.0, 1024.0, 8192.0
    kw = dict(attn_dp=2, ep=2, engine="vllm", input_len=isl, output_len=osl, max_num_tokens=mnt)
    full = inference.max_throughput(MODEL, "H200-SXM-141GB", concurrency=256, **kw)
    # sequences per rank whose wave's peak, N x (isl + osl), the KV cache holds (it admits N x (isl + osl / 2))
    N = float(np.floor(float(full["batch_size"].iloc[0]) * (isl + osl / 2) / (isl + osl)) - 1.0)
    r = inference.max_throughput(MODEL, "H200-SXM-141GB", concurrency=2 * N, **kw)
    assert N >= 32
    p = _prepared(attn_dp=2, ep=2)
    solo = _prepared(attn_dp=2, ep=2, moe_dp=1.0).coeffs
    t0, n_it, _, _ = steady_state(p, N, isl, osl, mnt)
    t1, _, _, _ = steady_state(replace(p, solo=solo), N, isl, osl, mnt)
    _, _, n_pf, _ = split_work(N, isl, osl, mnt, steady_work(N, isl, osl, mnt)[0])
    assert t1 > t0 * 1.02                      # the other rank's 8k-token chunks stall this one's decodes
    assert n_pf / n_it == pytest.approx(N * isl / mnt / n_it)
    # TPOT times the decode window (`estimate.steady_cycle`): the lockstep cycle less the request's own prefill
    # iteration (one: n_it = osl), whose wait is in its TTFT; the other prefill iterations' waits are in it
    win0, win1 = (steady_cycle(q, N, isl, osl, mnt)[4][0] for q in (p, replace(p, solo=solo)))
    assert n_it == osl and win1 > win0 * 1.02
    assert win1 < t1 * n_it / osl                   # the own prompt iteration (above the mean) left out
    # the closed loop's window is the cycle less the GPU TTFT (`estimate.cycle_split`): here (clients twice the
    # slots) a released prompt's TTFT and the run's start-up wave (2.5 % of the cycle), so within 3 % of win1
    tpot = float(r["tpot_ms"].iloc[0]) * 1e-3
    assert 0.97 * win1 < tpot < 1.03 * win1 and (osl - 1) * tpot < t1 * n_it
    a = inference.max_throughput(MODEL, "H200-SXM-141GB", tp=2, engine="vllm", input_len=isl, output_len=osl,
                                 concurrency=N, max_num_tokens=mnt)
    win = float(steady_cycle(_prepared(1, 1, tp=2), N, isl, osl, mnt)[4][0])
    assert 0.97 * win < float(a["tpot_ms"].iloc[0]) * 1e-3 < 1.03 * win


def test_more_ranks_wait_more():
    kw = dict(input_len=8192, output_len=1024, engine="vllm", max_num_tokens=8192)
    t = [float(inference.max_throughput(MODEL, "H200-SXM-141GB", attn_dp=r, ep=r, concurrency=64 * r,
                                        **kw)["tpot_ms"].iloc[0]) for r in (2, 4, 8)]
    assert t[0] < t[1] < t[2]


@pytest.mark.parametrize("gpu", ["B200", "H100-SXM-80GB"])
def test_the_all_gather_and_reduce_scatter_tables_hold_the_gathered_message(gpu):
    """nccl-tests' convention: the size of an all-gather is its gathered output, of a reduce-scatter its input, so
    at bandwidth-bound sizes each moves about half an all-reduce's bytes of the same message on any rank count (a
    per-rank size would put the all-gather at n / 2 x the all-reduce)."""
    prof = profiles.load(gpu, "vllm")
    ar, ag, rs = (prof.table(f"comm.nccl_{op}") for op in ("all_reduce", "all_gather", "reduce_scatter"))
    for n in (2.0, 4.0, 8.0):
        full = float(ar(n, 2.0 ** 26).item())
        ratio_ag, ratio_rs = float(ag(n, 2.0 ** 26).item()) / full, float(rs(n, 2.0 ** 26).item()) / full
        assert 0.4 < ratio_ag < 0.8 and 0.4 < ratio_rs < 0.8, (n, ratio_ag, ratio_rs)


def test_vllm_gathers_over_its_dp_group_on_the_all_gather_and_reduce_scatter_tables():
    """vLLM's AgRsAll2AllManager gathers over the DP group (attn_dp ranks, tp apart: domain / tp of them in one
    domain); SGLang over all tp x attn_dp GPUs; the time is the all-gather's plus the reduce-scatter's cell."""
    x = M_GRID[None, :] * 4096.0        # the gathered tokens' elements over the forward's token grid
    for engine, tp, adp, domain, n_expect in (("vllm", 2, 2, 8, 2), ("vllm", 4, 4, 8, 2), ("vllm", 8, 2, 8, 1),
                                              ("sglang", 2, 2, 8, 4), ("sglang", 4, 4, 8, 8)):
        prof = profiles.load("B200", engine)
        nccl_ar = prof.table("comm.nccl_all_reduce")
        t, _, n_g, _ = _gather_scatter(prof, nccl_ar, np.array([tp]), np.array([adp]), np.array([domain]), x)
        assert n_g.tolist() == [n_expect], engine
        if n_expect < 2:
            assert np.all(t == 0.0)                      # no in-domain stage
            continue
        n = np.array([[float(n_expect)]])
        own = prof.table("comm.nccl_all_gather")(n, x) + prof.table("comm.nccl_reduce_scatter")(n, x)
        np.testing.assert_allclose(t, own, rtol=1e-12)
        # at decode-sized messages two collectives' launch and latency, not one all-reduce's
        assert np.all((t > nccl_ar(n, x))[:, M_GRID <= 64])


def test_a_factorized_sweep_carries_the_solo_coefficients_row_by_row():
    """Above `core._FACTORIZE_MIN` configurations the preparation is factorized and evaluated in blocks
    (`Prepared.take`): each row's lockstep wait is the one its own call prices."""
    adp = np.tile([1, 2, 4, 2, 1], 1000)
    gpus = np.array(["H200-SXM-141GB", "B200"] * 2500, dtype=object)
    kw = dict(engine="vllm", input_len=2048, output_len=512, concurrency=256)
    big = inference.max_throughput(MODEL, gpus, attn_dp=adp, ep=adp, **kw)
    for k in (0, 1, 2, 3, 7):
        one = inference.max_throughput(MODEL, gpus[k], attn_dp=int(adp[k]), ep=int(adp[k]), **kw)
        assert float(big["tpot_ms"].iloc[k]) == pytest.approx(float(one["tpot_ms"].iloc[0]), rel=1e-12)
