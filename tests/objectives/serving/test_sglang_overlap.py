"""The engines' overlap loops (`profiles.OVERLAP_SINCE`: SGLang's overlap scheduler, vLLM's async scheduling from
0.14, TensorRT-LLM's PyTorch executor from 1.0): the loop forms and launches batch N+1 right after launching batch N
and receives new requests only when N's results are in, so a request arriving while N runs joins N+2. The simulator
(`serving.Scheduler.overlaps`, `engine._Replica.enqueue`) on hand-computed cases with a cost of one millisecond per
iteration, and the closed form (`inference.estimate.arrival_wait_iters`). vLLM before 0.14 (its synchronous
scheduler) is the engine that forms each batch when the previous one ends."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from objectives import profiles
from objectives.inference import core
from objectives.inference.estimate import (
    arrival_iter_s,
    arrival_wait_iters,
    prefill_wait_s,
    steady_state,
    steady_work,
)
from objectives.serving import Scheduler, Workload, simulate_costs


@dataclass(frozen=True)
class FlatCost:
    """Every iteration takes one millisecond; the replica's engine is named (policy and overlap follow it)."""

    engine: str = "sglang"
    kv_capacity_tokens: int = 100_000
    kv_bytes_per_token: float = 131072.0
    n_gpus: int = 1

    def time_ms(self, n_prefill_tokens, prefill_attn_pairs, n_decode_seqs, decode_kv_tokens):
        return 1.0


@dataclass(frozen=True)
class FlatRanks(FlatCost):
    """`FlatCost` whose attention-DP ranks step in lockstep (`engine._Group`)."""

    steps_in_lockstep: bool = True


def _ttft(engine: str, arrival_s: list[float], outputs: list[int], attn_dp: int = 1, prompt: int = 10,
          sched: Scheduler | None = None) -> np.ndarray:
    """TTFT (ms) of requests of `prompt` tokens arriving at `arrival_s` (s) with `outputs` tokens, in order, on one
    replica of `attn_dp` ranks in lockstep (each request to the rank with the fewest, the first of a tie), under
    `sched` (None: 64 sequences, 4096 tokens a step)."""
    trace = pd.DataFrame({"arrival_s": arrival_s, "input_tokens": [prompt] * len(arrival_s), "output_tokens": outputs})
    d = simulate_costs(FlatRanks(engine) if attn_dp > 1 else FlatCost(engine), workload=Workload(trace=trace),
                       scheduler=sched or Scheduler(max_batch_size=64, max_num_tokens=4096), per_request=True,
                       attn_dp=attn_dp)
    assert isinstance(d, pd.DataFrame)        # per_request: one row per request
    assert list(d["arrival_s"]) == pytest.approx(arrival_s)
    return d["ttft_ms"].to_numpy()


def test_the_engine_fact_lives_in_one_place():
    assert profiles.OVERLAP_ENGINES == ("sglang", "vllm", "trtllm")
    np.testing.assert_array_equal(profiles.overlap_mask(("vllm", "sglang==0.5.10", "trtllm", "roofline", None, "torch")),
                                  [1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    assert Scheduler().overlaps(FlatCost("sglang")) and Scheduler().overlaps(FlatCost("vllm"))
    assert not Scheduler().overlaps(FlatCost("vllm==0.13.0"))
    assert not Scheduler(batching="static").overlaps(FlatCost("sglang"))


def test_each_engine_overlaps_from_the_release_that_made_it_its_default():
    """vLLM's async scheduling is on by default from v0.14.0 (vllm-project/vllm#27614), TensorRT-LLM's PyTorch
    executor (its overlap scheduler on since 0.20) is trtllm-serve's default backend from 1.0; a bare name is the
    newest release, a nightly's label newer than the first release that overlaps."""
    # a pre-release counts as its release (`profiles.release_since` compares base versions: a release candidate is
    # cut from the release's branch), so 1.0.0rc4 and 0.14.0rc1 overlap (re-pinned: they read off before)
    on = ["vllm==0.14.0", "vllm@0.19.0", ("vllm", "0.26.0"), "vllm==nightly-5b8c30d62b754b57", "trtllm==1.0.0",
          "TensorRT-LLM==1.1.0-dev.2", "trtllm@1.3.0rc20", "sglang==0.4.0", "sglang", "trtllm==1.0.0rc4",
          "vllm==0.14.0rc1"]
    off = ["vllm==0.13.0", "vllm==0.11.2", "trtllm==0.20.0", "vllm==0.13.1rc1", "roofline", "torch", None, ""]
    assert [profiles.overlaps(e) for e in on] == [True] * len(on)
    assert [profiles.overlaps(e) for e in off] == [False] * len(off)
    np.testing.assert_array_equal(profiles.overlap_rows(["vllm==0.13.0", "vllm==0.14.0", "vllm"], ["", "", "gdn"]),
                                  [0.0, 1.0, 1.0])


def test_tensorrt_llm_context_servers_run_without_the_overlap_loop():
    """A TensorRT-LLM disaggregated context server runs with ``disable_overlap_scheduler`` (its PyTorch worker
    refused context-only requests with the loop on; `dse deploy` sets it on the prefill role): the simulator's
    prefill pool receives a request at once, its decode pool and the other engines' prefill pools as before."""
    assert not Scheduler().overlaps(FlatCost("trtllm"), "prefill")
    assert Scheduler().overlaps(FlatCost("trtllm"), "agg") and Scheduler().overlaps(FlatCost("trtllm"))
    assert Scheduler().overlaps(FlatCost("sglang"), "prefill") and Scheduler().overlaps(FlatCost("vllm"), "prefill")
    assert not profiles.overlaps_in_role("trtllm", "prefill") and profiles.overlaps_in_role("trtllm", "decode")


def test_sglang_serves_the_hybrid_models_its_radix_cache_holds_without_the_overlap_scheduler():
    """SGLang turns its overlap schedule off for Gated DeltaNet (Qwen3.5) and Mamba-2 (Nemotron-3) models, whose
    state its radix cache keeps in no_buffer mode, not for KDA (Kimi-K3: no radix cache) nor standard models:
    the closed form waits half an iteration for them, and the simulator's replica forms no batch ahead."""
    from objectives.inference import StepModel

    np.testing.assert_array_equal(
        profiles.overlap_rows(["sglang", "sglang", "sglang", "sglang==0.5.9", "vllm==0.13.0"],
                              ["", "gdn", "kda", "mamba2", ""]),
        [1.0, 0.0, 1.0, 0.0, 0.0])
    for model, wd, on in (("Qwen/Qwen3.5-397B-A17B", "fp8", False), ("Nemotron-3-Super-120B-A12B-FP8", "fp8", False),
                          ("Kimi-K3", "fp4", True), ("Qwen3-235B-A22B", "fp8", True)):
        p = core.prepare(model, "B300", tp=8, weight_dtype=wd, engine="sglang")
        # one client a replica: half the iteration in progress (random phase), and no overlap's (nothing in
        # flight: the idle engine takes it at once); two or more: the whole one, their requests sent as an
        # iteration ends reaching the scheduler after the next began, and the overlap's one more; between, in
        # proportion
        assert arrival_wait_iters(p, 1.0) == pytest.approx(0.5), model
        assert arrival_wait_iters(p, 64.0) == pytest.approx(2.0 if on else 1.0), model
        np.testing.assert_allclose(arrival_wait_iters(p, np.array([0.5, 1.5, 3.0])),
                                   np.array([0.5, 0.75, 1.0]) + on * np.array([0.0, 0.5, 1.0]))
        cost = StepModel(model, "B300", tp=8, weight_dtype=wd, engine="sglang")
        assert cost.overlap_scheduler is on and Scheduler().overlaps(cost) is on, model


def test_a_request_arriving_mid_iteration_joins_the_one_after_the_next():
    """A decodes from t = 1 ms (its prefill alone on an idle replica: TTFT 1 ms, no lag). B arrives at 10.5 ms,
    inside the iteration [10, 11): SGLang formed [11, 12) when it launched [10, 11), so B's prefill runs in
    [12, 13): TTFT 2.5 ms, and so do vLLM's async scheduling and TensorRT-LLM's overlap loop. vLLM 0.13's synchronous
    scheduler forms each iteration when the previous one ends: B runs in [11, 12), 1.5 ms."""
    for engine in ("sglang", "vllm", "vllm==0.14.0", "trtllm"):
        assert list(_ttft(engine, [0.0, 0.0105], [100, 5])) == pytest.approx([1.0, 2.5]), engine
    assert list(_ttft("vllm==0.13.0", [0.0, 0.0105], [100, 5])) == pytest.approx([1.0, 1.5])


def test_a_request_arriving_on_an_iteration_boundary_waits_one_iteration_more_than_without_the_overlap():
    """A and C are prefilled together in [0, 1); A's tenth token ends the decode steps' run at 10 ms, C decodes on.
    B arrives at exactly 10 ms, after that boundary's commit: the loop receives it with [9, 10)'s results as it forms
    [11, 12) ([10, 11) was formed before), so B's prefill runs in [11, 12), TTFT 2 ms; a loop that forms each
    iteration when the previous one ends takes it into [10, 11), 1 ms. On a boundary inside the run of decode steps
    (5 ms) the same: [6, 7), one iteration more than vLLM 0.13's [5, 6). (The boundary of a commit was not lagged
    at all before, 1 ms, where the one inside a run was: the simulator stepping each iteration, `skip` False,
    disagreed with its event skipping.)"""
    for engine in ("sglang", "vllm", "trtllm"):
        assert list(_ttft(engine, [0.0, 0.0, 0.010], [10, 100, 5])) == pytest.approx([1.0, 1.0, 2.0]), engine
        assert list(_ttft(engine, [0.0, 0.0, 0.005], [10, 100, 5])) == pytest.approx([1.0, 1.0, 2.0]), engine
    assert list(_ttft("vllm==0.13.0", [0.0, 0.0, 0.010], [10, 100, 5])) == pytest.approx([1.0, 1.0, 1.0])
    assert list(_ttft("vllm==0.13.0", [0.0, 0.0, 0.005], [10, 100, 5])) == pytest.approx([1.0, 1.0, 1.0])


def test_event_skipping_equals_stepping_with_requests_arriving_on_iteration_boundaries():
    """Requests arriving on iteration boundaries (whole milliseconds): at a commit where the simulator steps each
    iteration (`skip` False), at a commit or inside a run of decode steps where it skips to the next event; each is
    lagged one iteration, TTFT 2 ms (before, one on a commit's boundary was not: 1 ms)."""
    from objectives.serving.simulator import PoolCosts, _frame, _run

    arrival = [0.0, 0.0, 0.003, 0.005, 0.007, 0.012, 0.020, 0.021]
    trace = pd.DataFrame({"arrival_s": arrival, "input_tokens": 10, "output_tokens": [30, 9, 14, 6, 25, 8, 3, 12]})
    sched = Scheduler(max_batch_size=64, max_num_tokens=4096)
    frames = [_frame(_run(Workload(trace=trace), PoolCosts(FlatCost("vllm"), 1, sched), None, None, sched, 0.0,
                          "least_loaded", skip=skip)[0]) for skip in (True, False)]
    ttft = (frames[0]["first_token_s"] - frames[0]["arrival_s"]).to_numpy() * 1e3
    assert list(ttft) == pytest.approx([1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    for c in ("first_token_s", "finish_s"):
        np.testing.assert_allclose(frames[0][c], frames[1][c], rtol=1e-12)


def test_attention_dp_ranks_in_lockstep_are_lagged_at_their_groups_boundaries():
    """Each attention-DP rank's scheduler runs the overlap loop (SGLang: ``event_loop_overlap`` with DP attention,
    its ranks agreeing on the overlap through the gathered batch, sgl-project/sglang#20853; vLLM's DP engine cores'
    ``step_with_batch_queue``, async scheduling on with DP in vllm/config/vllm.py; TensorRT-LLM's overlap executor
    with attention DP): A and C run on the two ranks from 0 ms; B arrives at 10.5 ms on rank 0 (a tie: the first)
    and is prefilled in the group's step [12, 13), TTFT 2.5 ms, at exactly 11 ms in [12, 13) too; vLLM 0.13 takes
    it into [11, 12). A rank with nothing to run (B' at 10.5 ms to the idle rank 1 beside A) takes it at the
    group's next step on vLLM, whose idle DP rank runs its dummy batch synchronously
    (``DPEngineCoreProc.run_busy_loop``): [11, 12), 1.5 ms; SGLang's and TensorRT-LLM's run an idle batch through
    their overlap loop (`profiles.forms_idle_ahead`), so their idle rank is lagged as a busy one: [12, 13), 2.5 ms
    (1.5 before: the simulator did not lag an idle rank), and B' at exactly 11 ms, after the boundary's commit,
    in [12, 13) too (2 ms, against vLLM's 1 ms)."""
    for engine in ("sglang", "vllm", "trtllm"):
        assert list(_ttft(engine, [0.0, 0.0, 0.0105], [100, 100, 5], 2)) == pytest.approx([1.0, 1.0, 2.5]), engine
        assert list(_ttft(engine, [0.0, 0.0, 0.011], [100, 100, 5], 2)) == pytest.approx([1.0, 1.0, 2.0]), engine
    for engine, mid, edge in (("sglang", 2.5, 2.0), ("trtllm", 2.5, 2.0), ("vllm", 1.5, 1.0)):
        assert list(_ttft(engine, [0.0, 0.0105], [100, 5], 2)) == pytest.approx([1.0, mid]), engine
        assert list(_ttft(engine, [0.0, 0.011], [100, 5], 2)) == pytest.approx([1.0, edge]), engine
    assert list(_ttft("vllm==0.13.0", [0.0, 0.0, 0.0105], [100, 100, 5], 2)) == pytest.approx([1.0, 1.0, 1.5])


def test_an_idle_rank_forms_its_step_ahead_only_while_its_group_steps():
    """SGLang's and TensorRT-LLM's rank with nothing to run forms an idle batch only when another rank of its group
    has work (SGLang's ``prepare_mlp_sync_batch``, TensorRT-LLM's ``_pad_attention_dp_dummy_request``). A (one
    output token) is done at 1 ms, B reaches the idle group at 5 ms: prefilled at once. A
    (ten tokens) decodes to 10 ms on rank 0; B at 8.5 ms reaches idle rank 1 during [8, 9), is received at 9 ms as
    [9, 10) (an idle batch) was formed, and runs in [10, 11): 2.5 ms. B at 9.5 ms, received at 10 ms where A is done:
    rank 0's loop formed [10, 11) with A, its extra decode step (`_Replica.extra`), so the group steps on and rank 1's
    idle batch was formed ahead: B runs in [11, 12), 2.5 ms (1.5 before, as if nothing stepped on). vLLM's async
    scheduler formed rank 0's [10, 11) empty (A at max_tokens), and its rank 1 runs its dummy batch synchronously:
    B in [10, 11), 1.5 ms."""
    for engine in ("sglang", "trtllm", "vllm"):
        assert list(_ttft(engine, [0.0, 0.005], [1, 1], 2)) == pytest.approx([1.0, 1.0]), engine
    for engine, ttft in (("sglang", 2.5), ("trtllm", 2.5), ("vllm", 1.5)):
        assert list(_ttft(engine, [0.0, 0.0095], [10, 5], 2)) == pytest.approx([1.0, ttft]), engine
    for engine, ttft in (("sglang", 2.5), ("trtllm", 2.5), ("vllm", 1.5)):
        assert list(_ttft(engine, [0.0, 0.0085], [10, 5], 2)) == pytest.approx([1.0, ttft]), engine


def test_a_rank_whose_requests_finished_takes_no_late_request_while_its_group_steps():
    """A (ten tokens) on rank 0 and D on rank 1 from 0 ms; A's last step is [9, 10). B at 9.5 ms and C at exactly
    10 ms reach rank 0 (fewest requests, the first of a tie), received at 10 ms, after SGLang's and TensorRT-LLM's
    rank 0 formed [10, 11) with A (its loop does not know A is done) while D keeps the group stepping: they run in
    [11, 12), 2.5 and 2 ms (1.5 and 1 before). So on vLLM: its async scheduler formed rank 0's [10, 11) empty (A at
    max_tokens, vllm/v1/core/sched/scheduler.py ``schedule``), so ``step_with_batch_queue`` returns nothing executed
    at 10 ms and ``DPEngineCoreProc.run_busy_loop`` runs ``execute_dummy_batch`` with D's step before it reads its
    input queue (vllm/v1/engine/core.py): B and C in [11, 12) too (1.5 and 1 before).
    With E (two tokens) done at 2 ms, B at 8.5 ms and C at 9.5 ms both reach rank 0: B, received at 9 ms, runs in
    [10, 11), 2.5 ms; C, received at 10 ms, waits for [11, 12) where the rank's loop formed [10, 11) with B only:
    2.5 ms (1.5 before). vLLM's too: its rank holds B, a received prompt, so its async scheduler formed [10, 11) at
    9 ms as the others did (`_Replica.room`: the step formed ahead holds the prompts received)."""
    for engine, b, c in (("sglang", 2.5, 2.0), ("trtllm", 2.5, 2.0), ("vllm", 2.5, 2.0), ("vllm==0.13.0", 1.5, 1.0)):
        ttft = _ttft(engine, [0.0, 0.0, 0.0095, 0.010], [10, 100, 5, 5], 2)
        assert list(ttft) == pytest.approx([1.0, 1.0, b, c]), engine
    for engine, c in (("sglang", 2.5), ("trtllm", 2.5), ("vllm", 2.5)):
        ttft = _ttft(engine, [0.0, 0.0, 0.0, 0.0, 0.0085, 0.0095], [10, 100, 2, 100, 5, 5], 2)
        assert list(ttft) == pytest.approx([1.0, 1.0, 1.0, 1.0, 2.5, c]), engine


def test_arrivals_during_one_iteration_share_the_lagged_batch():
    """B at 10.2 ms and C at 10.7 ms both arrive during [10, 11): both are received at 11 ms and prefilled together
    in [12, 13); D at 11.4 ms, received at 12, in the next batch [13, 14)."""
    ttft = _ttft("sglang", [0.0, 0.0102, 0.0107, 0.0114], [100, 5, 5, 5])
    assert list(ttft) == pytest.approx([1.0, 13.0 - 10.2, 13.0 - 10.7, 14.0 - 11.4])


def test_a_request_reaching_an_idle_replica_is_not_lagged():
    """With nothing running the loop is idle and receives a request at once: A (one output token) is done at 1 ms,
    B arrives at 5 ms to an idle replica and is prefilled at once."""
    ttft = _ttft("sglang", [0.0, 0.005], [1, 1])
    assert list(ttft) == pytest.approx([1.0, 1.0])


def test_a_replica_whose_requests_finished_runs_their_extra_decode_step_first():
    """A (ten tokens) alone: its last token comes out of [9, 10). SGLang's and TensorRT-LLM's loop formed [10, 11)
    with A before it checked A's stop criteria (SGLang's ``process_batch_result_decode`` skips the token of a request
    already finished, "should only happen when overlap scheduling is enabled"; TensorRT-LLM's overlap scheduler
    "introduces one extra decoding step"): B at 9.5 ms and C at 10 ms, received at 10 ms, run in [11, 12), 2.5 and
    2 ms (1.5 and 1 before); B' alone at 10.5 ms, during that extra step, is received at 11 ms and runs at once:
    1.5 ms (1 before); after B, formed at 10 ms, it waits for [12, 13): 2.5 ms. vLLM's async scheduler formed [10, 11)
    empty (A at max_tokens: "Avoid scheduling an extra step") and its loop reads its queue before the next step, as
    vLLM 0.13's: 1.5 and 1 ms; B' alone on the idle replica at once. Stepping each iteration agrees."""
    from objectives.serving.simulator import PoolCosts, _frame, _run

    for engine, b, c, alone in (("sglang", 2.5, 2.0, 1.5), ("trtllm", 2.5, 2.0, 1.5), ("vllm", 1.5, 1.0, 1.0),
                                ("vllm==0.13.0", 1.5, 1.0, 1.0)):
        assert list(_ttft(engine, [0.0, 0.0095, 0.010], [10, 5, 5])) == pytest.approx([1.0, b, c]), engine
        assert list(_ttft(engine, [0.0, 0.0105], [10, 5])) == pytest.approx([1.0, alone]), engine
    assert list(_ttft("sglang", [0.0, 0.0095, 0.0105], [10, 5, 5])) == pytest.approx([1.0, 2.5, 2.5])
    trace = pd.DataFrame({"arrival_s": [0.0, 0.0095, 0.0105, 0.030, 0.0305], "input_tokens": 10,
                          "output_tokens": [10, 3, 7, 1, 4]})
    sched = Scheduler(max_batch_size=64, max_num_tokens=4096)
    frames = [_frame(_run(Workload(trace=trace), PoolCosts(FlatCost("sglang"), 1, sched), None, None, sched, 0.0,
                          "least_loaded", skip=skip)[0]) for skip in (True, False)]
    for col in ("first_token_s", "finish_s"):
        np.testing.assert_allclose(frames[0][col], frames[1][col], rtol=1e-12)


@dataclass(frozen=True)
class SeqCost(FlatCost):
    """1 ms a step plus 0.5 ms a decoding sequence (the extra decode step of a finished request shows in the price)."""

    def time_ms(self, n_prefill_tokens, prefill_attn_pairs, n_decode_seqs, decode_kv_tokens):
        return 1.0 + 0.01 * n_prefill_tokens + 0.5 * n_decode_seqs


def test_the_extra_decode_step_of_finished_requests_rides_the_next_step_beside_other_decodes():
    """A (3 tokens) and B (10) arrive together (100-token prompts: 3 ms prefill, then 2 ms steps of both, 1.5 ms of
    one). SGLang's and TensorRT-LLM's loop forms the step after A's last token with A before it checks A's stop
    criteria, so that step prices two sequences (2 ms), B's other steps after it one each: B finishes at 18.0 ms
    (17.5 before, where the extra step was charged only when nothing else decoded). vLLM skips A at max_tokens:
    17.5 ms. Skipping to the next event agrees with stepping each iteration."""
    from objectives.serving.simulator import PoolCosts, _frame, _run

    trace = pd.DataFrame({"arrival_s": [0.0, 0.0], "input_tokens": [100, 100], "output_tokens": [3, 10]})
    sched = Scheduler(max_batch_size=8, max_num_tokens=4096)
    for engine, b_done in (("sglang", 18.0), ("trtllm", 18.0), ("vllm", 17.5)):
        frames = [_frame(*_run(Workload(trace=trace), PoolCosts(SeqCost(engine), 1, sched), None, None, sched, 0.0,
                               "least_loaded", skip=skip)) for skip in (True, False)]
        for f in frames:
            assert list(f["finish_s"].to_numpy() * 1e3) == pytest.approx([7.0, b_done]), engine


def test_prompts_the_token_budget_left_waiting_are_the_step_formed_ahead():
    """A, B and C (100 prompt tokens, one output token: nothing decodes) reach an idle replica at 0 ms; the 200-token
    budget takes A and B into [0, 1) and leaves C waiting. The overlapping loop formed [1, 2) with C before it blocked
    on [0, 1) (vLLM's ``step_with_batch_queue`` schedules batch N+1, then waits for N; SGLang's
    ``event_loop_overlap`` runs ``get_next_batch_to_run`` before it processes N's result; TensorRT-LLM's overlap
    executor schedules before it updates the previous batch's requests), so D, arriving at 0.5 ms and
    received at 1 ms, is prefilled in [2, 3): TTFT 2.5 ms (it joined C in [1, 2), 1.5 ms, before: with no decodes and
    no prompt part-way the replica counted as having nothing else to run). vLLM 0.13 forms [1, 2) at 1 ms, with D.
    Where max_num_seqs (2) left C, the step formed ahead had no slot for it (A and B still held theirs): on vLLM that
    step is empty (A and B at max_tokens), and C and D go together into [1, 2); so where the KV cache (240 tokens: two
    prompts' blocks) left it. SGLang and TensorRT-LLM formed it with A's and B's extra decode (`_Replica.extra`):
    C and D go together into [2, 3), 3 and 2.5 ms."""
    budget = Scheduler(max_batch_size=4, max_num_tokens=200)
    seqs = Scheduler(max_batch_size=2, max_num_tokens=4096)
    kv = Scheduler(max_batch_size=4, max_num_tokens=4096, kv_capacity_tokens=240)
    at, outs = [0.0, 0.0, 0.0, 0.0005], [1, 1, 1, 1]
    for engine, short in (("sglang", [3.0, 2.5]), ("vllm", [2.0, 1.5]), ("trtllm", [3.0, 2.5])):
        assert list(_ttft(engine, at, outs, prompt=100, sched=budget)) == pytest.approx([1.0, 1.0, 2.0, 2.5]), engine
        assert list(_ttft(engine, at, outs, prompt=100, sched=seqs)) == pytest.approx([1.0, 1.0] + short), engine
        assert list(_ttft(engine, at, outs, prompt=100, sched=kv)) == pytest.approx([1.0, 1.0] + short), engine
    assert list(_ttft("vllm==0.13.0", at, outs, prompt=100, sched=budget)) == pytest.approx([1.0, 1.0, 2.0, 1.5])
    # with decodes running (two output tokens) the replica had something to run before as after: D in [2, 3)
    assert list(_ttft("vllm", at, [2] * 4, prompt=100, sched=budget)) == pytest.approx([1.0, 1.0, 2.0, 2.5])


def test_a_disaggregated_prefill_worker_forms_its_next_step_with_the_prompts_its_budget_left():
    """A prefill worker's prompts end in their step, so it never decodes: the same as above on a vLLM prefill pool
    (its requests handed off to a decode worker), stepping each iteration or skipping to the next event alike."""
    from objectives.serving.simulator import PoolCosts, _frame, _run

    trace = pd.DataFrame({"arrival_s": [0.0, 0.0, 0.0, 0.0005], "input_tokens": 100, "output_tokens": 5})
    sched = Scheduler(max_batch_size=4, max_num_tokens=200)
    frames = [_frame(_run(Workload(trace=trace), None, PoolCosts(FlatCost("vllm"), 1, sched),
                          PoolCosts(FlatCost("vllm"), 1, sched), sched, 0.0, "least_loaded", skip=skip)[0])
              for skip in (True, False)]
    ttft = (frames[0]["first_token_s"] - frames[0]["arrival_s"]).to_numpy() * 1e3
    assert ttft[3] - ttft[2] == pytest.approx(0.5)     # D one step behind C (it rode C's step before: -0.5 ms)
    for c in ("first_token_s", "finish_s"):
        np.testing.assert_allclose(frames[0][c], frames[1][c], rtol=1e-12)


def test_closed_form_waits_one_more_iteration_on_an_overlapping_engine():
    """The steady state's new request waits the iteration in progress, and on an engine that overlaps (SGLang, vLLM
    from 0.14) the next one too: the mean TTFT of such a row grows by (1 - ttft_wave) x the mean iteration over the
    same row without the engine fact (the roofline, no engine, waits the one in progress only); where prefill
    batches run alone (SGLang) that iteration is a decode step, not the mean one."""
    p = core.prepare("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine="sglang")
    v = core.prepare("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine="vllm")
    r = core.prepare("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine="roofline")
    assert p is not None and v is not None and r is not None
    assert float(np.max(arrival_wait_iters(p, 64.0))) == 2.0 and float(np.max(arrival_wait_iters(v, 64.0))) == 2.0
    assert float(np.max(arrival_wait_iters(r, 64.0))) == 1.0
    n, isl, osl, mnt = 64.0, 1024.0, 1024.0, 8192.0
    for q in (p, v):
        off = dataclasses.replace(q, coeffs=dataclasses.replace(q.coeffs, overlap=0.0))
        t, n_it, _, _ = steady_state(q, n, isl, osl, mnt)
        iter_s = float(t * n_it / steady_work(n, isl, osl, mnt, q.coeffs.prefill_alone)[0])
        w = float(np.max(q.coeffs.wave))
        diff = float(prefill_wait_s(q, n, isl, osl, mnt)) - float(prefill_wait_s(off, n, isl, osl, mnt))
        # the iteration waited: the mean one, or where prefill batches run alone (SGLang) a decode step
        # (`estimate.arrival_iter_s`, the thirty-eighth round's sglsplit)
        it = float(np.max(arrival_iter_s(q, n, isl, osl, iter_s, 1.0)))
        assert diff == pytest.approx((1.0 - w) * it, rel=1e-9)
        assert diff > 0.0
    assert float(np.max(arrival_iter_s(v, n, isl, osl, 1.0, 1.0))) == 1.0     # vLLM: the mean iteration


def test_closed_form_counts_an_idle_ranks_wait_over_its_group():
    """One client per attention-DP rank (N = 1): the rank's group steps while its other ranks hold requests, so a new
    request waits the group's iteration in progress (1 against 0.5 for a replica alone), and where an idle rank forms
    its step ahead (SGLang, TensorRT-LLM: `profiles.forms_idle_ahead`) the next one too, as the simulator's
    `engine._Group` lags it; vLLM's idle rank runs its dummy batch synchronously. With one busy rank (the clients
    fewer than the ranks, `moe_dp` = 1) the group is as idle as a replica alone; with N = 2 every rank is busy."""
    assert profiles.IDLE_AHEAD_ENGINES == ("sglang", "trtllm")
    for engine, ahead in (("sglang", 1.0), ("trtllm", 1.0), ("vllm", 0.0), ("vllm~=0.13.0", 0.0)):
        overlap = 1.0 if profiles.overlaps(engine) else 0.0
        for moe_dp, want in ((None, 1.0 + ahead), (4.0, 1.0 + ahead), (1.0, 0.5)):
            q = core.prepare("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine=engine, attn_dp=8, ep=8, moe_dp=moe_dp)
            assert q is not None
            assert float(np.max(arrival_wait_iters(q, 1.0))) == pytest.approx(want), (engine, moe_dp)
            assert float(np.max(arrival_wait_iters(q, 2.0))) == pytest.approx(1.0 + overlap), (engine, moe_dp)
        one = core.prepare("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine=engine)
        assert one is not None and float(np.max(arrival_wait_iters(one, 1.0))) == 0.5


def test_the_open_loop_waits_the_overlaps_iteration_where_the_simulator_does():
    """The analytical open loop (`serving.analytical._overlap`) lags the same deployments as the simulator: the
    GPU's default engine resolved (vLLM on an H100: async scheduling), SGLang but for the hybrid models its radix
    cache keeps, not with pp > 1 (pipeline loops), and with speculative decoding only where the engine release keeps
    the loop (vLLM's async scheduling with MTP; SGLang's first speculative worker, before 0.5.11, turns it off)."""
    from objectives.serving.analytical import Deployments, _overlap

    d = Deployments.of(gpu="H100-SXM-80GB", tp=[1, 1, 1, 2, 1], pp=[1, 1, 1, 1, 2],
                       engine=[None, "sglang", "roofline", "vllm", "vllm"])
    np.testing.assert_array_equal(_overlap("Llama-3.1-8B", d), [1.0, 1.0, 0.0, 1.0, 0.0])
    spec = Deployments.of(gpu="H100-SXM-80GB", engine=["vllm", "vllm~=0.13.0", "sglang~=0.5.10", "sglang", "vllm"],
                          pp=[1, 1, 1, 1, 2], speculative="mtp:1:0.8")
    np.testing.assert_array_equal(_overlap("deepseek-ai/DeepSeek-V3", spec), [1.0, 0.0, 0.0, 1.0, 0.0])
    hybrid = Deployments.of(gpu="B200", tp=8, weight_dtype="fp8", engine=["sglang", "vllm"])
    np.testing.assert_array_equal(_overlap("Qwen/Qwen3.5-397B-A17B", hybrid), [0.0, 1.0])


def test_the_open_loop_counts_an_idle_ranks_formed_step_over_its_group(monkeypatch):
    """The analytical open loop waits the step formed ahead in proportion to the chance that another sequence is in
    flight: where an idle attention-DP rank forms its step ahead while its group steps (SGLang, TensorRT-LLM on an MoE
    model with attn_dp > 1: `_idle_ahead`) any sequence of its group's, 1 - exp(-N x attn_dp), as the closed form's
    `formed_ahead_iters` (one helper: `estimate.ahead_clients`) and the simulator's `_Group` have it; the rank's own
    N elsewhere (before: its own N everywhere)."""
    from objectives.inference.estimate import ahead_clients
    from objectives.serving import analytical
    from objectives.serving.analytical import Deployments, ServingModel

    moe = "Qwen/Qwen3-30B-A3B"
    d = Deployments.of(gpu="H200", tp=1, ep=[8, 8, 8, 1], attn_dp=[8, 8, 8, 1],
                       engine=["sglang", "trtllm", "vllm", "sglang"])
    np.testing.assert_array_equal(analytical._idle_ahead(moe, d), [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(analytical._idle_ahead("Llama-3.1-8B", Deployments.of(gpu="H200", attn_dp=2,
                                                                                          engine="sglang")), [0.0])
    np.testing.assert_allclose(ahead_clients(np.array([0.5, 0.5]), np.array([4.0, 4.0]), np.array([1.0, 0.0])),
                               [4.0, 0.5])
    one = Deployments.of(gpu="H200", tp=1, ep=8, attn_dp=8, engine=["sglang", "vllm"])
    wl = Workload(rate=1.0, input_len=1024, output_len=256, n_requests=200)
    ttft = ServingModel(moe, wl).evaluate(one)["ttft_ms"].to_numpy(float)
    monkeypatch.setattr(analytical, "_idle_ahead", lambda model, d: np.zeros(len(d)))
    own = ServingModel(moe, wl).evaluate(one)["ttft_ms"].to_numpy(float)
    assert ttft[0] > own[0] + 1.0 and ttft[1] == pytest.approx(own[1], rel=1e-12)


def test_an_almost_idle_group_finds_almost_no_step_formed_ahead(monkeypatch):
    """The chance that an arrival finds an iteration in progress counts the sequences in flight at the rate (Little's
    law: rate x a sequence's residency), not the bisected occupancy, which is floored at half a sequence: at 0.02
    req/s on eight attention-DP ranks (SGLang, Qwen3-30B-A3B) the group's sequences are ~0.04, so the formed-ahead
    wait is ~4 % of an iteration, and the TTFT grows with the rate (before: 0.5 x 8 = 4 sequences, 98 % of an
    iteration at every rate, TTFT flat at 99.0 / 99.1 ms at 0.02 / 0.25 req/s)."""
    from objectives.serving import analytical
    from objectives.serving.analytical import Deployments, ServingModel

    seen, orig = [], analytical.ahead_clients

    def spy(N, group, idle):
        seen.append(np.asarray(group, dtype=float).copy())
        return orig(N, group, idle)

    monkeypatch.setattr(analytical, "ahead_clients", spy)
    d = Deployments.of(gpu="H200", tp=1, ep=8, attn_dp=8, engine="sglang")
    ttft = []
    for rate in (0.02, 0.25):
        seen.clear()
        wl = Workload(rate=rate, input_len=1024, output_len=256, n_requests=200)
        ttft.append(float(ServingModel("Qwen/Qwen3-30B-A3B", wl).evaluate(d)["ttft_ms"].iloc[0]))
        if rate == 0.02:
            assert 1.0 - np.exp(-seen[-1][0]) < 0.1, seen[-1]
    assert ttft[1] > ttft[0] + 1.0, ttft


def test_the_open_loops_lone_prompt_on_an_attention_dp_group_sends_only_its_tokens_to_the_experts():
    """An almost idle attention-DP group (SGLang, Qwen3-30B-A3B, eight ranks, ep 8, H200) prefills a lone prompt on
    one rank while the others run dummy forwards: only its tokens reach the routed experts (moe_dp=1, the
    simulator's `_Group`). Priced as one prompt on every rank, the open loop read 91 ms against the simulator's 47
    at 0.02 req/s (and 99 against 59 at 4 req/s); the same engine on one rank, where nothing changes, stays close."""
    from objectives.serving.analytical import Deployments, ServingModel
    from objectives.serving.simulator import simulate

    for rate in (0.02, 4.0):
        wl = Workload(rate=rate, input_len=1024, output_len=256, n_requests=200)
        for adp in (8, 1):
            d = Deployments.of(gpu="H200", tp=1, ep=adp, attn_dp=adp, engine="sglang")
            got = float(ServingModel("Qwen/Qwen3-30B-A3B", wl).evaluate(d)["ttft_ms"].iloc[0])
            sim = simulate("Qwen/Qwen3-30B-A3B", "H200", tp=1, ep=adp, attn_dp=adp, engine="sglang",
                           workload=wl)["ttft_ms_mean"]
            assert abs(got / sim - 1.0) < 0.12, (rate, adp, got, sim)


def test_a_static_decode_batch_decodes_a_member_once_its_kv_is_read_skipping_as_stepping():
    """Static batching on disaggregated pools: a decode worker's static batch admits its members together, each
    decoding from the first boundary after its KV read is done (`_Replica._begin`). Skipping to the next event ran
    the batch's decode segment on to its first finish, as if the batch admitted nobody (`_Replica.wake`): members
    whose read ended mid-segment joined late (first tokens up to 171 ms later than stepping each iteration, the
    second review). Now the segment stops where a read is done: skipping equals stepping."""
    from objectives.serving.simulator import PoolCosts, _frame, _run

    rng = np.random.default_rng(1)
    n = 30
    trace = pd.DataFrame({"arrival_s": np.sort(rng.uniform(0, 0.1, n)), "input_tokens": rng.integers(10, 600, n),
                          "output_tokens": rng.integers(1, 30, n)})
    sched = Scheduler(max_batch_size=4, max_num_tokens=2048, batching="static")
    for engine in ("vllm", "sglang"):
        frames = [_frame(_run(Workload(trace=trace), None, PoolCosts(FlatCost(engine), 1, sched),
                              PoolCosts(FlatCost(engine), 1, sched), sched, 1e-4, "least_loaded", skip=skip)[0])
                  for skip in (True, False)]
        for col in ("first_token_s", "finish_s"):
            np.testing.assert_allclose(frames[0][col], frames[1][col], rtol=1e-12, err_msg=engine)
