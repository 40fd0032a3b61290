"""A closed loop's rounds after its start-up wave (`lockstep.round_queue`, `estimate.round_prompt_work`): the
prompts keep arriving in clumps, share iterations and queue in the budget; the closed form's steady state follows
the simulator's later rounds."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import inference, serving
from objectives.calibration import silicon
from objectives.inference import lockstep
from objectives.inference.core import default_eff
from objectives.inference.efficiency import Efficiency, default_efficiency
from objectives.inference.lockstep import BENCHMARK_ROUNDS, arrival_rates, round_queue
from objectives.serving.simulator import _build, _frame


def test_a_round_in_the_first_rounds_regular_order_does_not_queue_and_the_drift_makes_it_queue():
    # exactly equal outputs: every round arrives in the first round's order, one prompt a full-budget iteration
    # (rho = 1 held at 1 - 1 / sqrt(N)), but regularly spaced (ca^2 = 0): a D/D/1 queue, no wait
    others, queued, busy = round_queue(64.0, 8192.0, 1024.0, 8192.0, 1087.0, spread=0.0)
    assert queued == 0.0
    assert others == 0.0                      # a full-budget prompt shares its iteration with none
    assert busy == pytest.approx(1.0 - np.exp(-1.0))
    # drifting outputs widen the window (Poisson-like beyond the first round's order): the prompts queue
    assert round_queue(64.0, 8192.0, 1024.0, 8192.0, 1087.0)[1] > 0.1


def test_the_queue_is_m_d_1_at_the_rounds_rate_scaled_by_the_drifts_share_of_the_window():
    lam = arrival_rates(256.0, 1024.0, 1024.0, 8192.0, 1056.0)
    others, queued, _ = round_queue(256.0, 1024.0, 1024.0, 8192.0, 1056.0)
    assert others == pytest.approx(np.mean(np.minimum(lam, 7.0)))
    rho, n_pf = lam / 8.0, 256.0 * 1024.0 / 8192.0
    ca2 = 1.0 - (n_pf * lam / 256.0) ** 2
    assert queued == pytest.approx(np.mean(ca2 * rho / (2.0 * (1.0 - rho)) / 8.0))


def test_prefill_batches_alone_wait_only_for_the_prompts_of_their_own_decode_step():
    """SGLang pauses the decodes while prompts wait, so none arrive meanwhile: half of the others of the same
    decode step beyond its batch's g, whatever the queue an engine mixing chunks into decodes would carry. Its round
    arrives in one decode step (the round's requests decode in the same steps: a first window of N x isl tokens,
    n_pf = 1), widened by the drift over at most the cycle's osl - 1 decode steps (re-pinned from the first round's
    prefill order, 8192-token chunks, in the thirty-seventh round)"""
    lam = arrival_rates(64.0, 8192.0, 1024.0, 64.0 * 8192.0, 1023.0)
    queued = round_queue(64.0, 8192.0, 1024.0, 8192.0, 1087.0, alone=1.0)[1]
    assert queued == pytest.approx(np.mean(0.5 * lam))
    assert queued > np.mean(0.5 * arrival_rates(64.0, 8192.0, 1024.0, 8192.0, 1087.0))
    assert round_queue(256.0, 1024.0, 1024.0, 16384.0, 1040.0, alone=1.0)[1] == 0.0    # all fit in one batch


def test_more_clients_queue_longer_and_a_single_round_has_no_later_rounds():
    q = [round_queue(n, 8192.0, 1024.0, 8192.0, 1024.0 + n)[1] for n in (4.0, 16.0, 64.0)]
    assert q[0] < q[1] < q[2]
    assert all(float(x) == 0.0 for x in round_queue(64.0, 8192.0, 1024.0, 8192.0, 1087.0, rounds=1))


def test_the_rounds_kept_in_front_give_the_docstrings_numbers_to_the_bit():
    """`round_queue` evaluates its rounds on the leading axis, in place, and sums them in numpy's own order
    (`lockstep._round_mean`): the same bits as its docstring's formulas on a trailing rounds axis averaged by np.mean
    (a numpy that sums in another order fails here instead of moving `max_throughput`'s numbers)."""
    rng = np.random.default_rng(0)
    for n in (1, 5, 8, 9, 17, 200):       # every branch of numpy's pairwise sum
        x = rng.standard_normal((n, 64)) * 10.0 ** rng.uniform(-8.0, 8.0, (n, 64))
        assert np.array_equal(lockstep._round_mean(x), np.mean(np.ascontiguousarray(x.T), axis=-1))
    N, isl, osl = rng.integers(1, 1024, 500) * 1.0, rng.integers(16, 16384, 500) * 1.0, rng.integers(1, 4096, 500) * 1.0
    T_pf, alone = np.maximum(8192.0 - N, 1.0), (rng.random(500) < 0.5) * 1.0
    n_it = np.maximum(osl, N * (isl + osl) / 8192.0)
    # prefill batches alone: the round arrives in one decode step, over at most osl - 1 of them
    lam = arrival_rates(N, isl, osl, np.where(alone > 0, N * isl, T_pf),
                        np.where(alone > 0, np.maximum(osl - 1.0, 1.0), n_it))
    g = (T_pf / isl)[:, None]
    rho = np.minimum(lam / g, np.maximum(1.0 - 1.0 / np.sqrt(N), 0.0)[:, None])
    n_pf = np.minimum(N * isl / T_pf, n_it)[:, None]
    wait = np.clip(1.0 - (n_pf * lam / N[:, None]) ** 2, 0.0, 1.0) * rho / (2.0 * (1.0 - rho)) / g
    wait = np.where(alone[:, None] > 0, 0.5 * np.maximum(lam + 1.0 - g, 0.0) / g, wait)
    want = (np.mean(np.minimum(lam, np.maximum(g - 1.0, 0.0)), axis=-1), np.mean(wait, axis=-1),
            np.mean(-np.expm1(-lam / np.minimum(g, 1.0)), axis=-1))
    assert all(np.array_equal(a, b) for a, b in zip(round_queue(N, isl, osl, T_pf, n_it, alone), want))


def test_the_wave_share_is_what_a_benchmark_run_holds_and_is_not_fitted():
    share = default_efficiency().params["ttft_wave"]
    assert all(share[e] == pytest.approx(1.0 / BENCHMARK_ROUNDS) for e in ("vllm", "sglang", "trtllm"))
    assert not any(p[0] == "ttft_wave" for p in silicon.fitted_paths())


@pytest.mark.parametrize("engine,isl,clients,rel", [("vllm", 8192, 64, 0.3), ("vllm", 1024, 256, 0.25),
                                                    ("sglang", 8192, 64, 0.25), ("trtllm", 8192, 16, 0.25)])
def test_the_closed_forms_steady_state_follows_the_simulators_later_rounds(engine, isl, clients, rel):
    """The simulator's requests after the first round (arriving once a client's previous one finished) against
    `max_throughput` with no start-up wave (``ttft_wave`` 0) and no front end on either side: within 20 % (the
    steady state without the rounds' clumps priced 0.4-0.7 of them at these loads). 25 %: the engines that overlap
    (all three here) wait one iteration more in both, the closed form a mean one, the simulator the one its loop
    formed ahead, a prompt-carrying iteration of the round's window (vLLM 1k/256: 62 against 24.8 ms; docs/profiles.md
    thirty-sixth round): SGLang 0.86, TensorRT-LLM 0.85. vLLM's 1k prompts at 256 clients: 1.14x before vLLM
    overlapped; 1.49x while the simulator did not lag a request arriving on an iteration boundary (the closed-loop
    clients' with no front end), 0.95 since it lags it one iteration (`engine._Replica.enqueue`). 30 %: vLLM's 8k
    prompts at 64 clients, the mechanism's weakest case, 0.75 (0.91 before that lag; its skipped iteration 96 against
    a mean of 28.5 ms)."""
    base = default_eff()
    eff = Efficiency({**base.params, "ttft_wave": {e: 0.0 for e in base.params["ttft_wave"]},
                      "engine_ttft_ms": 0.0}, base.meta)
    kw = dict(weight_dtype="fp8", engine=engine)
    closed = float(inference.max_throughput("Llama-3.1-8B", "H100-SXM-80GB", input_len=isl, output_len=1024,
                                            concurrency=clients, efficiency=eff, **kw)["ttft_ms"].iloc[0])
    w = serving.Workload(concurrency=clients, input_len=isl, output_len=1024, n_requests=BENCHMARK_ROUNDS * clients)
    # (the same profile: no host time on the simulator's side either, so a client sends its next request as the
    # GPU finishes its last, on an iteration boundary)
    q = _frame(*_build("Llama-3.1-8B", "H100-SXM-80GB", 1, 1, "fp8", None, None, w, serving.Scheduler(frontend_ms=0.0),
                       "agg", 1, None, None, None, "least_loaded", engine, profile=eff))
    later = q.loc[q["arrival_s"] > 0, "ttft_ms"].mean()
    assert closed == pytest.approx(later, rel=rel)


def test_prefill_batches_alone_with_two_token_outputs_take_the_whole_round_at_once():
    # SGLang, 8192/2: one decode step a cycle, so the round's 32 prompts arrive in it and a prompt waits for half of
    # the others beyond its batch (before: the round spread over the first round's 32 prefill batches, 0.5 / g)
    g = 8192.0 / 8192.0
    queued = round_queue(32.0, 8192.0, 2.0, 8192.0, 34.0, alone=1.0)[1]
    assert queued == pytest.approx(0.5 * (32.0 + 1.0 - g) / g)


def test_prompts_received_together_after_the_host_lag_queue_where_decodes_ride_beside_them():
    """A finished request's next prompt reaches the scheduler `lag` decode steps later: where the round's requests
    finish in pure decode steps (outputs longer than the window), the prompts of the window's first 1 + lag steps
    arrive together and queue ahead of the rest (vLLM, TensorRT-LLM, Llama-3.1-8B 2048/64 on one H100: 0.53x the
    simulator's TTFT without it)."""
    args = (32.0, 2048.0, 64.0, 8192.0, 80.0)
    base = round_queue(*args, spread=0.0)[1]
    assert round_queue(*args, spread=0.0, lag=0.0)[1] == base == 0.0
    q = [round_queue(*args, spread=0.0, lag=x)[1] for x in (1.0, 3.0, 6.0)]
    assert 0.0 < q[0] < q[1] < q[2]
    # at rho = 1 (the first round's order, g = 4 a step, window n_pf = 8 steps) the batch of m = 1 + lag steps'
    # prompts stays queued through the window: each group i <= m waits i - 1 steps, the later ones m - 1; the mean
    # over the 8 groups in full-budget iterations (the fluid queue: the groups' own step spread out)
    m, n_pf = 7.0, 8.0
    q0 = 4.0 * (m - 1.0)
    expect = (0.5 * q0 * q0 / 4.0 + 4.0 * q0 * (n_pf - m) / 4.0) / 32.0
    assert q[2] == pytest.approx(expect)
    # outputs shorter than the window: the round's requests finish during its prefill, whose iterations outlast the
    # lag, so none are received together
    assert round_queue(32.0, 2048.0, 8.0, 8192.0, 16.0, spread=0.0, lag=6.0)[1] == 0.0
    # prefill batches alone (SGLang): the decodes pause while any prompt waits, so every prompt received during the
    # lag joins one burst of prefill batches (re-pinned in the thirty-eighth round: before, the lag was not priced
    # there). The round's window (2.2 to 6.1 decode steps over rounds 2-10 at +-2 % of 64 tokens) lies within
    # 1 + 6 steps: the whole round, 32 prompts at g = 4 a batch, waits half the others: (32 + 1 - 4) / 2 / 4
    # (span None: the prefill batch far longer than the lag, none of the burst served before it is all in)
    alone = [round_queue(32.0, 2048.0, 64.0, 8192.0, 72.0, alone=1.0, lag=x)[1] for x in (0.0, 1.0, 6.0)]
    assert 0.0 < alone[0] < alone[1] < alone[2] == pytest.approx(3.625)
    # a prefill batch of 16 decode steps serves a 16th of the burst before the rest arrive: fewer held
    assert alone[0] < round_queue(32.0, 2048.0, 64.0, 8192.0, 72.0, alone=1.0, lag=6.0, span=16.0)[1] < alone[2]
    # a prefill batch no longer than a decode step serves a step's prompts before the next arrive: no burst
    assert round_queue(32.0, 2048.0, 64.0, 8192.0, 72.0, alone=1.0, lag=6.0, span=1.0)[1] == alone[0]


def test_a_large_sweep_in_blocks_broadcasts_length_one_arguments_whole():
    """`round_queue` prices a sweep beyond 2 x `QUEUE_BLOCK_ROWS` rows a block at a time: an argument of length 1
    broadcasts over every block (the third review: it was cut to nothing from the second block on, dropping the
    host-lag queue of the rows after it)."""
    n = 2 * lockstep.QUEUE_BLOCK_ROWS + 808
    isl = np.linspace(512.0, 4096.0, n)
    whole = round_queue(32.0, isl, 64.0, 8192.0, 80.0, lag=3.0)
    ones = round_queue(np.array([32.0]), isl, 64.0, 8192.0, 80.0, alone=np.array([0.0]), lag=np.array([3.0]))
    for a, b in zip(whole, ones):
        np.testing.assert_array_equal(a, b)
    assert np.all(whole[1][-100:] > 0.0)
