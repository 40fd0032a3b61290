"""SLOs on percentiles, the analytical model's queueing under an arrival rate (checked against the simulator),
capacity search, the `dse capacity` command, and confirming a front by simulation (dse.fidelity)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

import dse
import objectives
import spaces
from dse.fidelity import Confirming, confirm
from dse.objective import objective_info
from objectives import serving
from objectives.serving.capacity import meets

MODEL = "Llama-3.1-70B"
P99 = serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99")
RATE4 = serving.Workload(rate=4.0, input_len=2048, output_len=256)


def cfg(**kw):
    base = dict(gpu="H200-SXM-141GB", tp=4, pp=1, weight_dtype="fp8", act_dtype="fp8", kv_dtype="fp8",
                max_batch_size=256, max_num_tokens=8192, chunked_prefill=True)
    return {**base, **kw}


# -- SLO --------------------------------------------------------------------------------------------------------

def test_slo_statistics_and_their_metric_names():
    assert P99.constraints == {"ttft_ms_p99": ("<=", 2000.0), "tpot_ms_p99": ("<=", 200.0)}
    assert serving.SLO(ttft_ms=500).constraints == {"ttft_ms": ("<=", 500.0)}            # mean: the old names
    assert serving.SLO.parse({"ttft_ms_p90": 800, "e2e_ms_p90": 9000}) == serving.SLO(
        ttft_ms=800, e2e_ms=9000, percentile="p90")
    assert serving.SLO.parse({"ttft_ms": 1, "percentile": "p50"}).constraints == {"ttft_ms_p50": ("<=", 1.0)}
    o = objectives.llm_serving_objective(MODEL, workload=RATE4, slo={"ttft_ms_p99": 2000, "tpot_ms_p99": 200})
    assert o.constraints == {"ttft_ms_p99": ("<=", 2000.0), "tpot_ms_p99": ("<=", 200.0), "fits": ("==", 1.0)}


def test_slo_bounds_are_the_metrics_bounded_and_meets_reads_only_them():
    slo = serving.SLO(e2e_ms=9000.0, ttft_ms=800, percentile="p90")
    assert list(slo.bounds.items()) == [("ttft_ms", 800), ("e2e_ms", 9000.0)]     # SLO_METRICS' order, as given
    assert serving.SLO().bounds == {}
    m = {"ttft_ms_p90": 800.0, "tpot_ms_p90": float("nan"), "e2e_ms_p90": 9000.0}
    assert meets(m, slo)                                  # the unbounded TPOT (NaN) is not read; bounds inclusive
    assert not meets({**m, "e2e_ms_p90": 9000.5}, slo) and not meets({**m, "ttft_ms_p90": float("nan")}, slo)


def test_slo_bad_input_lists_the_valid_values():
    with pytest.raises(ValueError, match="p95.*valid: mean, p50, p90, p99"):
        serving.SLO(ttft_ms=1, percentile="p95")
    with pytest.raises(ValueError, match="'itl_ms_p99' is unknown; valid keys: ttft_ms, ttft_ms_p50"):
        serving.SLO.parse({"itl_ms_p99": 5})
    with pytest.raises(ValueError, match="mixes statistics"):
        serving.SLO.parse({"ttft_ms_p99": 5, "tpot_ms_p90": 5})
    with pytest.raises(dse.ObjectiveError, match="tpot_ms_p999"):
        objectives.llm_serving_objective(MODEL, slo={"tpot_ms_p999": 5})


def test_constraints_given_beside_an_slo_must_check_every_bound_of_it():
    """`constraints=` are the study's constraints: beside an explicit `slo=` they silently dropped the SLO bounds
    they did not name (the study never checked tpot_ms_p99 <= 50 below). Refused, naming the bound; constraints
    that cover the SLO (with a confidence or not), or constraints alone, are accepted."""
    slo = {"ttft_ms_p99": 2000, "tpot_ms_p99": 50}
    with pytest.raises(dse.ObjectiveError, match=r"tpot_ms_p99 <= 50 would not be checked: add \['tpot_ms_p99'\]"):
        objectives.llm_serving_objective(MODEL, slo=slo, constraints={"ttft_ms_p99": ("<=", 2000)})
    both = {"ttft_ms_p99": ("<=", 2000, 0.9), "tpot_ms_p99": ("<=", 50, 0.9)}
    assert objectives.llm_serving_objective(MODEL, slo=slo, constraints=both).constraints == {
        **{k: (op, float(b), c) for k, (op, b, c) in both.items()}, "fits": ("==", 1.0)}
    alone = objectives.llm_serving_objective(MODEL, constraints={"ttft_ms_p99": ("<=", 2000)})
    assert alone.constraints == {"ttft_ms_p99": ("<=", 2000.0), "fits": ("==", 1.0)}


def test_e2e_bound_counts_in_simulated_attainment():
    w = serving.Workload(rate=2.0, input_len=512, output_len=64, n_requests=200)
    loose = serving.simulate("Llama-3.1-8B", "H100", workload=w, slo=serving.SLO(e2e_ms=1e6))
    tight = serving.simulate("Llama-3.1-8B", "H100", workload=w, slo=serving.SLO(e2e_ms=loose["e2e_ms_p50"]))
    assert loose["slo_attainment"] == 1.0 and 0.3 < tight["slo_attainment"] < 0.7


# -- the analytical model under an arrival rate ----------------------------------------------------------------

def test_open_loop_percentiles_agree_with_the_simulator():
    rows = pd.DataFrame([cfg(gpu=g, tp=tp) for g, tp in (("H100-SXM-80GB", 4), ("H200-SXM-141GB", 2),
                                                         ("B200", 8), ("H200-SXM-141GB", 8))])
    o = objectives.llm_serving_objective(MODEL, workload=RATE4, slo=P99, n_requests=1500)
    a, s = o(rows), o.at_fidelity("simulated")(rows)
    for col, tol in (("ttft_ms", 0.2), ("ttft_ms_p99", 0.3), ("tpot_ms", 0.15), ("tpot_ms_p99", 0.3),
                     ("throughput_tok_s", 0.03)):
        gap = np.abs(a[col] / s[col] - 1.0)
        assert (gap < tol).all(), (col, a[col].round(1).tolist(), s[col].round(1).tolist())
    assert (a["ttft_ms_p99"] > 1.5 * a["ttft_ms"]).all()            # queueing gives the tail
    assert (a["requests_per_s"] == 4.0).all() and (a["slo_attainment"] > 0.99).all()
    np.testing.assert_allclose(a["goodput_req_s"], a["requests_per_s"] * a["slo_attainment"])


def test_a_prompt_that_arrives_alone_holds_the_pipelines_decodes_for_its_whole_pass():
    """With pp > 1 a prompt that arrives alone rides one micro-batch; the other micro-batches' decodes queue behind
    it on every stage (vLLM's batch queue of pp batches, SGLang's pp micro-batches), so each prompt stalls the
    decodes for its whole pass, as the simulator's `StepModel.time_ms` prices it. The open-loop analytical TPOT
    had packed a cycle's prompts into budget-sized prefill iterations spread over the pp micro-batches (the closed
    loop's groups), so a pipeline overlapped prompts that never arrive together: mean TPOT 17.5 % (PP 2) and 25 %
    (PP 4) below the simulator's here. Now a prefill iteration holds the prompts that arrive during the one before
    (`_prompts_at_once`: x + e^-x, x = rate x the iteration a prompt rides on, `ride_ms`), and PP 1 rows are
    unchanged."""
    from objectives.serving.analytical import Deployments, ServingModel, _prompts_at_once

    assert _prompts_at_once(np.array([0.0, 0.3, 5.0, 5.0]), np.array([2, 4, 2, 1])) == pytest.approx(
        [1.0, 0.3 + np.exp(-0.3), 5.0 + np.exp(-5.0), np.inf])
    w = serving.Workload(rate=4.0, input_len=2048, output_len=256, n_requests=600)
    m = ServingModel("Llama-3.1-70B", w)
    s = serving.Scheduler(max_batch_size=256, max_num_tokens=8192)
    tpot = {}
    for pp in (1, 2, 4):
        a = m.evaluate(Deployments.of(gpu="B200", tp=1, pp=pp, weight_dtype="fp4", kv_dtype="fp8", max_batch_size=256,
                                      max_num_tokens=8192)).iloc[0]
        sim = serving.simulate("Llama-3.1-70B", "B200", 1, pp, weight_dtype="fp4", kv_dtype="fp8", workload=w,
                               scheduler=s)
        assert a["tpot_ms"] == pytest.approx(sim["tpot_ms_mean"], rel=0.08), (pp, a["tpot_ms"], sim["tpot_ms_mean"])
        assert a["tpot_ms_p99"] == pytest.approx(sim["tpot_ms_p99"], rel=0.12), (pp, a["tpot_ms_p99"],
                                                                                sim["tpot_ms_p99"])
        tpot[pp] = a["tpot_ms"]
    # one batch in flight (no schedule here overflows the 8,192-token budget: vLLM's batch queue, SGLang's and
    # TensorRT-LLM's pp loops open another batch only then), so a decode step passes every stage in turn and the
    # pipeline prices about PP 1's step (the micro-batch split had PP 4 below PP 2 below PP 1, 0.85-1x)
    for pp in (2, 4):
        assert tpot[pp] == pytest.approx(tpot[1], rel=0.05), tpot


def test_a_prompt_bound_per_deployment_holds_at_one_occupancy_column():
    """`ServingModel._at` takes the prompts one prefill iteration carries one per deployment or one per occupancy;
    with occupancies of shape (n, 1) (read as (n,)) a bound of shape (n,) had been dropped, the PP 2 row's TPOT
    priced as the closed loop's budget-sized groups (13.9 ms here instead of 20.7 with one prompt an iteration)."""
    from objectives.serving.analytical import Deployments, ServingModel

    d = Deployments.of(gpu="H100", tp=1, pp=[1, 2], weight_dtype="fp8", kv_dtype="fp8", engine="roofline")
    m = ServingModel("Llama-3.1-8B", serving.Workload(rate=4.0, input_len=2048, output_len=128, n_requests=500))
    occ, one = np.array([32.0, 64.0]), np.ones(2)
    flat = m._at(d, occ, prompts=one)
    free = m._at(d, occ)
    assert flat["tpot_ms"][1] > 1.2 * free["tpot_ms"][1]     # the bound matters where pp > 1 ...
    # ... and at pp 1 only as any bound does (`inference.estimate.steady_state`: requests arriving apart run whole
    # prompts beside pure decode steps, not the closed loop's mean iteration; TPOT's decode window then leaves the
    # request's own whole prompt iteration out, `estimate.decode_window`, which the mean iteration spreads over
    # every iteration): 13.72 against 13.78 ms here (13.88 when TPOT was the cycle / osl)
    assert 0.98 * free["tpot_ms"][0] < flat["tpot_ms"][0] < 1.02 * free["tpot_ms"][0]
    assert flat["tpot_ms"][0] != free["tpot_ms"][0]
    for n_col, bound in ((occ[:, None], one), (occ[:, None], one[:, None]), (np.c_[occ, occ], one)):
        got = m._at(d, n_col, prompts=bound)
        for key in ("ttft_ms", "tpot_ms"):
            assert np.reshape(got[key], (2, -1)) == pytest.approx(np.c_[flat[key]] * np.ones((1, n_col.shape[1])),
                                                                  rel=1e-12), (n_col.shape, np.shape(bound), key)


def test_prompts_queued_beyond_one_budget_fill_the_pipelines_next_batches():
    """With pp > 1 the engine keeps up to pp batches in flight, each with its own token budget (vLLM v1's batch
    queue of max_concurrent_batches = pp, SGLang's pp micro-batches): prompts queued beyond one budget go into the
    next batches, which pass the stages behind the first. The simulator ran one budget at a time through the
    stages, so a PP 2 replica prefilled a queue no faster than PP 1 (mean TTFT 1.00x here) and a PP 2 prefill pool
    held 1.28x less than the analytical model said. 32 prompts at once, 4 to a budget: 8 batches at PP 2 pass
    in the time of 4 on one stage."""
    w = serving.Workload(rate=math.inf, input_len=2048, output_len=2, n_requests=32)
    s = serving.Scheduler(max_batch_size=256, max_num_tokens=8192)
    ttft = {pp: serving.simulate("Llama-3.1-8B", "H100-SXM-80GB", 1, pp, weight_dtype="fp8", workload=w,
                                 scheduler=s)["ttft_ms_mean"] for pp in (1, 2)}
    assert 0.45 * ttft[1] < ttft[2] < 0.65 * ttft[1], ttft


def test_a_prompt_arriving_mid_round_goes_into_the_batch_formed_at_the_next_return():
    """With pp > 1 the engines form their next batch each time one in flight returns, but keep one batch in flight
    until a schedule overflows a token budget (vLLM's batch queue schedules every request not in flight into one
    batch and blocks on the oldest; SGLang's and TensorRT-LLM's pp loops leave a slot empty when nothing new is
    waiting). 16 sequences decoding, two 4,096-token prompts 180 ms apart on a 70B TP 2 replica: with the default
    8,192-token budget one batch carries the decodes and the first prompt, so the second waits for its whole pass as
    at PP 1 (TTFT 1.42x the first's at PP 4 and PP 1; the simulator had kept min(pp, sequences) batches in flight
    and started it a stage behind, 1.0-1.2x). With a 4,096-token budget the first prompt overflows it and opens a
    second batch: the second prompt goes into the batch formed at the next return (1.0x)."""
    from objectives.serving.traces import Trace

    arr = np.r_[np.zeros(16), 2.0, 2.18]
    w = serving.Workload(trace=Trace(arr, np.r_[np.full(16, 128), 4096, 4096], np.r_[np.full(16, 3000), 2, 2]))

    def ttft(pp: int, **kw: Any) -> np.ndarray:
        return serving.simulate_requests("Llama-3.1-70B", "H100-SXM-80GB", 2, pp, weight_dtype="fp8", kv_dtype="fp8",
                                         workload=w, **kw)["ttft_ms"].to_numpy()[16:]

    one, four = ttft(1), ttft(4)
    assert four[1] / four[0] == pytest.approx(one[1] / one[0], rel=0.05), (one, four)
    assert one[1] > 1.3 * one[0], one
    split = ttft(4, scheduler=serving.Scheduler(max_num_tokens=4096))
    assert split[1] < 1.1 * split[0], split


def test_a_pipeline_keeps_one_batch_in_flight_until_a_schedule_overflows_a_budget():
    """vLLM's batch queue, SGLang's and TensorRT-LLM's pp loops open another batch only when a schedule overflows a
    token budget (`estimate.pipeline_lanes`), and a batch lives while it holds requests. At low load a 70B PP 2 / 4
    replica keeps one batch, so a prompt waits for the whole round: the simulator's p99 TTFT is 1.6-2.2x what it
    was with min(pp, sequences) batches in flight, and the analytical open loop follows it (p99 0.98-1.08x the
    simulator's; it read 0.46-0.66x of it while it kept min(pp, N) returns a round)."""
    from objectives.inference.estimate import pipeline_lanes
    from objectives.serving.analytical import Deployments, ServingModel

    assert pipeline_lanes(4, 16, 4096 + 15, 8192) == 1.0      # the decodes and a prompt fit one budget
    assert pipeline_lanes(4, 16, 20000, 8192) == 3.0          # the leftovers open two more batches
    assert pipeline_lanes(4, 2, 20000, 8192) == 2.0           # at most one a sequence
    assert pipeline_lanes(4, 64, 1e6, 8192) == 4.0            # at most pp
    assert pipeline_lanes(1, 64, 1e6, 8192) == 1.0
    for pp, rate in ((2, 1.84), (4, 3.55)):
        w = serving.Workload(rate=rate, input_len=1024, output_len=256, n_requests=1200)
        d = Deployments.of(gpu="H100-SXM-80GB", tp=2, pp=pp, weight_dtype="fp8", kv_dtype="fp8", engine="vllm")
        a = ServingModel("Llama-3.1-70B", w).evaluate(d).iloc[0]
        sim = serving.simulate("Llama-3.1-70B", "H100-SXM-80GB", 2, pp, weight_dtype="fp8", kv_dtype="fp8",
                               workload=w, engine="vllm", discard="steady")
        assert a["ttft_ms_p99"] == pytest.approx(sim["ttft_ms_p99"], rel=0.15), (pp, a["ttft_ms_p99"],
                                                                                sim["ttft_ms_p99"])
        assert a["tpot_ms"] == pytest.approx(sim["tpot_ms_mean"], rel=0.05), (pp, a["tpot_ms"], sim["tpot_ms_mean"])


def test_sglangs_pipeline_pauses_only_the_decodes_of_the_batch_its_prompt_goes_into():
    """SGLang's ``event_loop_pp`` forms each micro-batch slot from that slot's own running batch, and a prefill
    batch takes the slot in place of its decode: the other slots keep decoding. 70B PP 2 on SGLang: 12 prompts at
    once overflow one budget (two batches in flight), then six lone prompts join the lighter batch: its requests
    finish a few prefill passes after the other batch's, where the simulator had paused every decode for each
    prompt (all twelve finished together). The closed form now counts the open loop's smaller prefill batches in
    the cycle (`estimate.steady_work`): SGLang PP 4 at 0.3x load TPOT 0.54 -> ~1.0x the simulator's."""
    from objectives.serving.analytical import Deployments, ServingModel
    from objectives.serving.traces import Trace

    arr = np.r_[np.zeros(12), 1.0 + np.arange(6) * 0.5]
    w = serving.Workload(trace=Trace(arr, np.r_[np.full(12, 1024), np.full(6, 2048)],
                                     np.r_[np.full(12, 400), np.full(6, 2)]))
    fin = serving.simulate_requests("Llama-3.1-70B", "H100-SXM-80GB", 2, 2, weight_dtype="fp8", kv_dtype="fp8",
                                    workload=w, engine="sglang")["finish_s"].to_numpy()[:12]
    late, early = np.sort(fin)[-3:], np.sort(fin)[1:9]
    assert np.ptp(early) < 1e-3, fin                          # one batch, decoding together
    assert late.min() - early.max() > 0.05, fin              # the other paused for the six prefills
    w = serving.Workload(rate=0.3 * 35.5, input_len=1024, output_len=256, n_requests=1200)
    d = Deployments.of(gpu="H100-SXM-80GB", tp=2, pp=4, weight_dtype="fp8", kv_dtype="fp8", engine="sglang")
    a = ServingModel("Llama-3.1-70B", w).evaluate(d).iloc[0]
    sim = serving.simulate("Llama-3.1-70B", "H100-SXM-80GB", 2, 4, weight_dtype="fp8", kv_dtype="fp8", workload=w,
                           engine="sglang", discard="steady")
    assert a["tpot_ms"] == pytest.approx(sim["tpot_ms_mean"], rel=0.1), (a["tpot_ms"], sim["tpot_ms_mean"])


def test_paused_and_stalled_decoders_keep_their_wait_in_the_itl_record():
    """The ITL record holds every decoder's gaps, so on any trace they sum to sum(finish - first token). SGLang
    PP 2 (the trace above): a decoder a partial pause held back (`_pipe_lanes`) had its next gap logged as the next
    iteration alone (2.7 s of decoder time missing), and a prefill-only iteration's stall was charged to the
    prompts whose first token ended it (2.2 s too many): recorded 95,964 ms against 93,771."""
    from objectives.serving import simulator
    from objectives.serving.traces import Trace

    arr = np.r_[np.zeros(12), 1.0 + np.arange(6) * 0.5]
    w = serving.Workload(trace=Trace(arr, np.r_[np.full(12, 1024), np.full(6, 2048)],
                                     np.r_[np.full(12, 400), np.full(6, 2)]))
    for pp in (1, 2):
        eng, reps = simulator._build("Llama-3.1-70B", "H100-SXM-80GB", 2, pp, "fp8", None, "fp8", w, None, "agg",
                                     1, None, None, None, "least_loaded", "sglang", 1, 1)
        df = simulator._frame(eng, reps)
        it, sg = np.asarray(eng.iters).reshape(-1, 2), np.asarray(eng.segs).reshape(-1, 4)
        rec = (it[:, 0] * it[:, 1]).sum() + (sg[:, 0] * sg[:, 1] * (sg[:, 2] + sg[:, 3]) * 0.5).sum() + sum(eng.gaps)
        n = it[:, 1].sum() + (sg[:, 0] * sg[:, 1]).sum() + len(eng.gaps)
        assert n == (df["output_tokens"] - 1).sum()
        # exact at pp 1; with the refit's factors a pipeline's record still misses ~0.04 % of its decoders' time on
        # this trace (a leftover in docs/profiles.md), far below the 2.9 % the paused decoders used to lose
        assert rec == pytest.approx(((df["finish_s"] - df["first_token_s"]) * 1e3).sum(), rel=1e-9 if pp == 1 else 1e-3), pp


def test_only_an_engine_that_runs_prefill_alone_pauses_a_pipeline_slot_at_a_time():
    """The per-slot pause is SGLang's ``event_loop_pp``, not the policy's: vLLM with ``prefill_first`` and PP 2
    pauses all its decodes for a prefill-only iteration (the twelve finish together), where it had SGLang's split."""
    from objectives.serving.traces import Trace

    arr = np.r_[np.zeros(12), 1.0 + np.arange(6) * 0.5]
    w = serving.Workload(trace=Trace(arr, np.r_[np.full(12, 1024), np.full(6, 2048)],
                                     np.r_[np.full(12, 400), np.full(6, 2)]))
    fin = {e: serving.simulate_requests("Llama-3.1-70B", "H100-SXM-80GB", 2, 2, weight_dtype="fp8", kv_dtype="fp8",
                                        workload=w, engine=e, scheduler=serving.Scheduler(policy="prefill_first")
                                        )["finish_s"].to_numpy()[:12] for e in ("vllm", "sglang")}
    assert np.ptp(fin["vllm"]) < 1e-3, fin
    assert np.ptp(fin["sglang"]) > 0.05, fin


def test_sglang_pipelines_run_the_pp_loop_not_the_overlap_scheduler():
    """SGLang dispatches pp_size > 1 to ``event_loop_pp`` before its overlap loop (scheduler.py's dispatch), whose
    slots take the requests received at their turn: a new request goes into the batch formed at the next return,
    not the iteration after the next. The simulator had lagged it an iteration (mean TTFT 0.86x analytical /
    simulated at 0.1x load, 70B PP 2); the closed form's arrival wait keeps the overlap's iteration at pp 1 only."""
    from objectives.inference import core
    from objectives.inference.estimate import arrival_wait_iters
    from objectives.serving.analytical import Deployments, ServingModel

    kw = dict(weight_dtype="fp8", kv_dtype="fp8", engine="sglang")
    one, two = (core.prepare("Llama-3.1-70B", "H100-SXM-80GB", 2, pp, **kw) for pp in (1, 2))
    # two clients (one finds the engine idle, no overlap's iteration either way): the whole iteration in progress,
    # and at pp 1 the overlap's one more
    assert float(np.max(arrival_wait_iters(one, 2.0))) == 2.0 and float(np.max(arrival_wait_iters(two, 2.0))) == 1.0
    w = serving.Workload(rate=1.84, input_len=1024, output_len=256, n_requests=1200)
    a = ServingModel("Llama-3.1-70B", w).evaluate(Deployments.of(gpu="H100-SXM-80GB", tp=2, pp=2, **kw)).iloc[0]
    sim = serving.simulate("Llama-3.1-70B", "H100-SXM-80GB", 2, 2, workload=w, discard="steady", **kw)
    assert a["ttft_ms"] == pytest.approx(sim["ttft_ms_mean"], rel=0.05), (a["ttft_ms"], sim["ttft_ms_mean"])


def test_a_pipelined_prefill_worker_hands_a_prompt_off_when_its_own_pass_ends():
    """A disaggregated prefill worker with pp = 4 running two batches of prompts (a budget each) returns one half
    way through their pass; a prompt arriving before then goes into the batch formed there and its pass ends with
    theirs (it cannot overtake them), where the simulator had it wait for their round and then pass alone: its
    first token came a prefill pass (33 ms) after theirs. 8B H100, 2,048-token prompts: one alone, then eight (two
    budgets of 8,192 tokens), then one 60 ms in."""
    from objectives.serving.traces import Trace

    arr = np.r_[0.0, 0.001 + np.arange(8) * 0.001, 0.06]
    w = serving.Workload(trace=Trace(arr, np.full(10, 2048), np.full(10, 4)))
    r = serving.simulate_requests("Llama-3.1-8B", "H100-SXM-80GB", 1, 1, weight_dtype="fp8", workload=w,
                                  mode="disagg", prefill=serving.Pool(n_workers=1, pp=4),
                                  decode=serving.Pool(n_workers=1), scheduler=serving.Scheduler(max_num_tokens=8192))
    first = r["first_token_s"].to_numpy() * 1e3
    assert first[9] < first[8] + 5.0, first
    assert first[0] < first[8] - 50.0, first


def test_pipe_start_integrates_the_survival_exactly_between_its_points():
    """`_pipe_start` on a ramp from 0 to 100 sequences over 10 s of a 100 s run (0.01 req/ms, 1,000 requests): no
    hazard keeps the whole run on one batch (mean occupancy (50 x 1e4 + 100 x 9e4) / 1e5, each sequence stepping
    once per `step_ms`); a hazard of 1e3 per ms overflows at once, E[T] = 1 / h, where the trapezoid gave the
    first interval half its length (share 0.0125 for the exact 1e-8)."""
    from objectives.serving.analytical import _pipe_start

    N = np.linspace(0.0, 100.0, 5)[None, :]
    args = (np.array([0.01]), np.array([1000.0]), N, np.full((1, 5), 50.0))
    st = _pipe_start(*args, np.zeros((1, 5)), 255.0, np.array([np.inf]))
    assert st["share"][0] == pytest.approx(1.0, rel=1e-12) and st["N"][0] == pytest.approx(95.0, rel=1e-12)
    assert st["tokens"][0] == pytest.approx((1e4 * 50.0 + 9e4 * 100.0) / 50.0 / (1000.0 * 255.0), rel=1e-12)
    assert st["round"][0] == pytest.approx(50.0, rel=1e-12)
    st = _pipe_start(*args, np.full((1, 5), 1e3), 255.0, np.array([np.inf]))
    assert st["share"][0] == pytest.approx(0.01 * 1e-3 / 1000.0, rel=1e-6)
    # a hazard that rises between points: each piece's exponential (H's increments by trapezoid) integrated
    # exactly matches a fine quadrature of exp(-H) with H linear between the points
    h = np.array([[0.0, 1e-4, 4e-4, 9e-4, 1.6e-3]])
    st = _pipe_start(*args, h, 255.0, np.array([np.inf]))
    t = np.linspace(0.0, 1e4, 4001)
    hseg = np.diff(np.r_[0.0, np.cumsum(0.5 * (h[0, :-1] + h[0, 1:]) * 2500.0)]) / 2500.0
    H = np.interp(t, np.linspace(0.0, 1e4, 5), np.r_[0.0, np.cumsum(hseg * 2500.0)])
    ref = np.trapezoid(np.exp(-H), t) + np.exp(-H[-1]) * (-np.expm1(-h[0, -1] * 9e4)) / h[0, -1]
    assert st["share"][0] == pytest.approx(0.01 * ref / 1000.0, rel=1e-5)


def test_a_pipelines_run_starts_on_one_batch_until_a_schedule_first_overflows():
    """An open loop that opens a second batch in flight starts on one (`estimate.pipeline_lanes`): its occupancy
    builds from an empty start and the first overflow comes 17.7 s into the simulator's run (70B PP 2 on vLLM at
    9.2 req/s), its first ~160 requests queueing on one batch (p99 TTFT ~600 ms, ~240 after). The analytical open
    loop read the opened batches' state for the whole run (p99 0.54x the simulator's whole run); it now blends
    the one-batch start by the share of requests before the first overflow (`analytical._pipe_start`)."""
    from objectives.serving.analytical import Deployments, ServingModel, _mix_quantile, _pipe_start

    # constant hazard h from the start: E[min(T, run)] = (1 - e^-h run) / h; no hazard: the queue's bound
    N = np.zeros((2, 5))
    st = _pipe_start(np.full(2, 0.01), np.full(2, 1000.0), N, np.full((2, 5), 50.0), np.c_[[1e-4, 0.0]] * np.ones(5),
                     255.0, np.array([np.inf, 4e4]))
    assert st["share"] == pytest.approx([(1 - math.exp(-10.0)) / 10.0, 0.4], rel=1e-9)
    one = {"p50": np.array([100.0]), "p90": np.array([200.0]), "p99": np.array([400.0])}
    two = {k: 2.0 * v for k, v in one.items()}
    assert _mix_quantile(np.array([0.0]), one, two, "p99") == pytest.approx(800.0, rel=1e-6)
    assert _mix_quantile(np.array([1.0]), one, two, "p90") == pytest.approx(200.0, rel=1e-6)
    assert 400.0 < _mix_quantile(np.array([0.5]), one, two, "p99") < 800.0
    w = serving.Workload(rate=9.2, input_len=1024, output_len=256, n_requests=1200)
    d = Deployments.of(gpu="H100-SXM-80GB", tp=2, pp=2, weight_dtype="fp8", kv_dtype="fp8", engine="vllm")
    a = ServingModel("Llama-3.1-70B", w).evaluate(d).iloc[0]
    sim = serving.simulate("Llama-3.1-70B", "H100-SXM-80GB", 2, 2, weight_dtype="fp8", kv_dtype="fp8", workload=w,
                           engine="vllm", discard=0)
    assert a["ttft_ms_p99"] == pytest.approx(sim["ttft_ms_p99"], rel=0.15), (a["ttft_ms_p99"], sim["ttft_ms_p99"])
    assert a["ttft_ms"] == pytest.approx(sim["ttft_ms_mean"], rel=0.15), (a["ttft_ms"], sim["ttft_ms_mean"])
    # TPOT times the decode window (`inference.estimate.decode_window`), as the simulator does: 0.945 of its mean
    # (0.954 when it was the cycle / osl, the own prompt's pass through both stages in it)
    assert a["tpot_ms"] == pytest.approx(sim["tpot_ms_mean"], rel=0.06), (a["tpot_ms"], sim["tpot_ms_mean"])
    # each row priced as alone, whatever the other rows (pp 1, SGLang's prefill alone, PP 4)
    mixed = Deployments.of(gpu="H100-SXM-80GB", tp=2, pp=[1, 2, 2, 4], weight_dtype="fp8", kv_dtype="fp8",
                           engine=["vllm", "sglang", "vllm", "trtllm"])
    cols = ["ttft_ms", "ttft_ms_p99", "tpot_ms"]
    m = ServingModel("Llama-3.1-70B", w)
    alone = np.vstack([m.evaluate(mixed.take([k]))[cols].to_numpy(float) for k in range(4)])
    np.testing.assert_allclose(m.evaluate(mixed)[cols].to_numpy(float), alone, rtol=1e-9)
    assert alone[2] == pytest.approx([a[c] for c in cols], rel=1e-9)


def test_a_pipelined_prefill_pools_queue_passes_one_batch_until_a_budget_overflows():
    """A disaggregated prefill worker with pp > 1 keeps one batch in flight until a schedule overflows a budget, as
    the aggregated replicas: its queue passes a prompt per pass through every stage, not pp at once, and where one
    batch falls behind the arrivals the queue holds up to a budget's prompts before another opens. 8B, one PP 2
    prefill worker, 2,048-token prompts at 20 / 32 req/s: p99 TTFT 0.74 / 0.73x the simulator's with pp batches
    always in flight, now within 15 %."""
    from objectives.serving.analytical import Deployments, ServingModel

    d = Deployments.of(gpu="H100-SXM-80GB", tp=1, pp=1, dp=3, weight_dtype="fp8", mode="disagg", prefill_replicas=1,
                       prefill_pp=2)
    for rate in (20.0, 32.0):
        w = serving.Workload(rate=rate, input_len=2048, output_len=128, n_requests=3000)
        a = ServingModel("Llama-3.1-8B", w).evaluate(d).iloc[0]
        sim = serving.simulate("Llama-3.1-8B", "H100-SXM-80GB", 1, 1, weight_dtype="fp8", workload=w,
                               discard="steady", mode="disagg", prefill=serving.Pool(n_workers=1, pp=2),
                               decode=serving.Pool(n_workers=2))
        assert a["ttft_ms_p99"] == pytest.approx(sim["ttft_ms_p99"], rel=0.15), (rate, a["ttft_ms_p99"],
                                                                                sim["ttft_ms_p99"])
        assert a["ttft_ms"] == pytest.approx(sim["ttft_ms_mean"], rel=0.06), (rate, a["ttft_ms"], sim["ttft_ms_mean"])


@pytest.mark.parametrize("mode", ["agg", "disagg"])
def test_a_pipelines_analytical_capacity_is_the_simulators(mode):
    """Capacity of PP 2 deployments near saturation, analytical against simulated (issue 14): an aggregated
    Llama-3.1-70B replica (the analytical model's rate came from the closed loop's budget-sized prompt groups
    pipelined, 1.07x the simulator's; at 8 req/s it read stable where the simulator was overloaded) and a
    disaggregated prefill pool with pp = 2 (its rate from one pipelined batch's fill and drain, the simulator's
    from one budget at a time: 1.29x). Both now within 5 %, and the p99 TTFT at 0.9x capacity within 1.5x."""
    from objectives.serving.analytical import Deployments, ServingModel

    if mode == "agg":
        model, tp, isl, osl = "Llama-3.1-70B", 2, 1024, 512
        slo = serving.SLO(ttft_ms=3000, tpot_ms=100, percentile="p99")
        kw: dict = dict(kv_dtype="fp8", scheduler=serving.Scheduler(max_batch_size=128, max_num_tokens=8192))
        pp, layout = 2, dict(tp=2, pp=2, kv_dtype="fp8", max_batch_size=128)
    else:
        model, tp, isl, osl = "Llama-3.1-8B", 1, 2048, 128
        slo = serving.SLO(ttft_ms=1000, tpot_ms=25, percentile="p99")
        kw = dict(mode="disagg", prefill=serving.Pool(n_workers=1, pp=2), decode=serving.Pool(n_workers=2))
        pp, layout = 1, dict(tp=1, pp=1, dp=3, mode="disagg", prefill_replicas=1, prefill_pp=2)
    c = serving.capacity(model, "H100-SXM-80GB", tp, pp, weight_dtype="fp8", slo=slo, tol=0.02,
                         workload=serving.Workload(rate=1.0, input_len=isl, output_len=osl), **kw)
    assert c["analytical_req_s"] == pytest.approx(c["capacity_req_s"], rel=0.05), c
    rate = 0.9 * c["capacity_req_s"]
    w = serving.Workload(rate=rate, input_len=isl, output_len=osl, n_requests=3000)
    a = ServingModel(model, w).evaluate(Deployments.of(gpu="H100-SXM-80GB", weight_dtype="fp8", **layout)).iloc[0]
    sim = serving.simulate(model, "H100-SXM-80GB", tp, pp, weight_dtype="fp8", workload=w, discard="steady", **kw)
    assert 1 / 1.5 < a["ttft_ms_p99"] / sim["ttft_ms_p99"] < 1.5, (a["ttft_ms_p99"], sim["ttft_ms_p99"])


def test_e2e_percentiles_do_not_add_the_output_lengths_tail_to_the_tpots_tail():
    """A request's end-to-end latency is its TTFT plus its output tokens times its own TPOT: the longest outputs
    do not also get the highest TPOT (that tail comes from short requests stalled by prompts). The analytical
    percentiles added the three p-quantiles (lognormal outputs: p99 1.34x the simulator's); the output length's
    deviation now adds in quadrature to the load's (TTFT and TPOT together), so fixed lengths keep their sum."""
    D = serving.Dist
    row = pd.DataFrame([cfg(gpu="H100-SXM-80GB", tp=1, max_batch_size=128)])
    for out, tol in ((D("lognormal", mean=256, std=400), 0.15), (D("uniform", low=16, high=1024), 0.06)):
        w = serving.Workload(rate=10.0 if out.kind == "lognormal" else 4.0, input_len=1024, output_len=out,
                             n_requests=3000)
        o = objectives.llm_serving_objective("Llama-3.1-8B", workload=w, slo={"e2e_ms_p99": 1e9})
        a, s = o(row).iloc[0], o.at_fidelity("simulated")(row).iloc[0]
        for p in ("p90", "p99"):
            assert abs(a[f"e2e_ms_{p}"] / s[f"e2e_ms_{p}"] - 1.0) < tol, (out.kind, p, a[f"e2e_ms_{p}"],
                                                                           s[f"e2e_ms_{p}"])
    w = serving.Workload(rate=10.0, input_len=1024, output_len=256)
    a = objectives.llm_serving_objective("Llama-3.1-8B", workload=w, slo={"e2e_ms_p99": 1e9})(row).iloc[0]
    for p in ("p50", "p90", "p99"):
        assert a[f"e2e_ms_{p}"] == pytest.approx(a[f"ttft_ms_{p}"] + 255 * a[f"tpot_ms_{p}"], rel=1e-12)


def test_open_loop_ttft_pays_the_engines_front_end_and_large_batches_agree():
    """The engine's API-server time (engine_ttft_ms, as the simulator charges it) is in every open-loop TTFT
    statistic once; a batch of 4,100 deployments (prepared per distinct configuration) gives the lone one's row."""
    from objectives.inference.efficiency import default_efficiency, from_params
    from objectives.serving.analytical import Deployments, ServingModel

    base = default_efficiency()
    front = {**base.params["engine_ttft_ms"], "vllm": 40.0}
    with_front = from_params({**base.params, "engine_ttft_ms": front})
    without = from_params({**base.params, "engine_ttft_ms": {**front, "vllm": 0.0}})
    one = Deployments.of(gpu="H100-SXM-80GB", tp=2, weight_dtype="fp8", engine="vllm")
    a = ServingModel(MODEL, RATE4, efficiency=with_front).evaluate(one).iloc[0]
    b = ServingModel(MODEL, RATE4, efficiency=without).evaluate(one).iloc[0]
    for col in ("ttft_ms", "ttft_ms_p50", "ttft_ms_p99"):
        assert a[col] - b[col] == pytest.approx(40.0, rel=1e-6), col
    assert a["tpot_ms"] == pytest.approx(b["tpot_ms"], rel=1e-9)
    many = Deployments.of(gpu=["H100-SXM-80GB"] * 4100, tp=2, weight_dtype="fp8", engine="vllm")
    c = ServingModel(MODEL, RATE4, efficiency=with_front).evaluate(many)
    for col in ("ttft_ms", "ttft_ms_p99", "tpot_ms", "throughput_tok_s"):
        np.testing.assert_allclose(c[col].to_numpy(float), a[col], rtol=1e-9, err_msg=col)


def test_overloaded_rate_misses_the_slo_in_both_fidelities():
    w = serving.Workload(rate=40.0, input_len=2048, output_len=256, n_requests=600)
    o = objectives.llm_serving_objective(MODEL, workload=w, slo=P99)
    row = pd.DataFrame([cfg(gpu="H100-SXM-80GB", tp=2, max_batch_size=64)])
    a, s = o(row).iloc[0], o.at_fidelity("simulated")(row).iloc[0]
    assert a["ttft_ms_p99"] > 2000 and s["ttft_ms_p99"] > 2000
    assert a["requests_per_s"] < 40 and a["slo_attainment"] < 0.5
    assert a["throughput_tok_s"] == pytest.approx(s["throughput_tok_s"], rel=0.15)


def test_slower_arrivals_lower_latency_and_raise_cost_per_token():
    rows = pd.DataFrame([cfg()])
    out = {r: objectives.llm_serving_objective(MODEL, workload=serving.Workload(rate=r), slo=P99)(rows).iloc[0]
           for r in (1.0, 6.0)}
    assert out[1.0]["ttft_ms_p99"] < out[6.0]["ttft_ms_p99"] and out[1.0]["tpot_ms"] < out[6.0]["tpot_ms"]
    assert out[1.0]["usd_per_mtok"] == pytest.approx(6 * out[6.0]["usd_per_mtok"], rel=1e-6)   # idle GPUs paid


# -- capacity -----------------------------------------------------------------------------------------------------

def test_capacity_is_the_edge_of_the_slo():
    # its speed (target <= 1 s CPU) is benchmarks/serving.py's, not a unit test's
    r = serving.capacity(MODEL, "H200", tp=4, weight_dtype="fp8", kv_dtype="fp8", slo=P99,
                         workload=serving.Workload(rate=1.0, input_len=2048, output_len=256))
    cap = r["capacity_req_s"]
    assert 0.8 < cap / r["analytical_req_s"] < 1.25 and r["n_simulations"] >= 2
    assert meets(r["metrics"], P99)
    w = serving.Workload(rate=cap * 1.3, input_len=2048, output_len=256, n_requests=1000)
    above = serving.simulate(MODEL, "H200", tp=4, weight_dtype="fp8", kv_dtype="fp8", workload=w)
    assert not meets(above, P99)


def test_analytical_capacity_is_within_tol_of_the_edge_far_below_saturation():
    """A tight p99 TTFT bound holds a disaggregated deployment at ~1/20 of its saturated rate: the capacity is the
    edge within `tol` of itself there, not within `tol` of the saturated rate (six halvings of [0, saturated] left
    a bracket of 0.11 req/s around an answer of 0.34 req/s)."""
    sm = serving.ServingModel(MODEL, serving.Workload(rate=1.0, input_len=2048, output_len=256, n_requests=2000))
    d = serving.Deployments.of(gpu="H200", tp=4, weight_dtype="fp8", kv_dtype="fp8", mode="disagg", dp=[2, 3],
                               prefill_replicas=[1, 1], prefill_gpu="H200", prefill_tp=2)
    slo = serving.SLO(ttft_ms=500.0, tpot_ms=100, percentile="p99")
    saturated = sm.evaluate(d, slo, rate=np.full(2, 1e9))["requests_per_s"].to_numpy(float)
    cap = sm.capacity(d, slo, tol=0.02)
    assert (cap < saturated / 10).all(), (cap, saturated)

    def ttft(rate: np.ndarray) -> np.ndarray:
        return sm.evaluate(d, slo, rate=rate)["ttft_ms_p99"].to_numpy(float)
    assert (ttft(cap) <= 500.0).all() and (ttft(cap * 1.02) > 500.0).all(), (cap, ttft(cap), ttft(cap * 1.02))


def test_capacity_metric_and_analytical_capacity_are_monotone():
    o = objectives.llm_serving_objective(MODEL, workload=RATE4, slo=P99, capacity=True)
    out = o(pd.DataFrame([cfg(tp=2), cfg(tp=4), cfg(tp=8), cfg(gpu="L40S", tp=1, weight_dtype="bf16",
                                                             act_dtype="bf16")]))
    cap = out["capacity_req_s"].to_numpy()
    assert np.isfinite(cap[:3]).all() and (cap[:3] > 4.0).all() and np.isnan(cap[3])   # L40S cannot hold 70B
    assert cap[0] < cap[1] < cap[2]
    with pytest.raises(ValueError, match="fidelity"):
        serving.capacity(MODEL, "H200", slo=P99, fidelity="exact")


def test_capacity_metric_of_a_closed_loop_study_is_an_open_loop_rate():
    """capacity_req_s is the highest open-loop rate meeting the SLO. Under a closed-loop study workload (16 users)
    the analytical model's rate override kept the users' slot limit (max_batch_size cut to 16): 12.2 req/s for an
    H100 whose 16 users are served 17.4 req/s within the SLO, and an open-loop capacity of 38.3 req/s."""
    row = pd.DataFrame([cfg(gpu="H100-SXM-80GB", tp=1)])
    slo = serving.SLO(ttft_ms=500, percentile="p99")
    caps = [objectives.llm_serving_objective("Llama-3.1-8B", workload=dict(w, input_len=1024, output_len=128), slo=slo,
                                             capacity=True)(row)["capacity_req_s"].iloc[0]
            for w in ({"concurrency": 16}, {"rate": 4.0})]
    assert caps[0] == pytest.approx(caps[1], rel=1e-9) and caps[1] > 30


def test_smallest_deployment_meets_the_target_rate():
    space = spaces.llm_serving("Llama-3.1-8B", ["H100", "L40S"], max_gpus=2, formats=["bf16", "fp8"],
                               kv_dtypes=["fp8"], max_batch_sizes=(64, 256), max_num_tokens=(8192,),
                               chunked_prefill=(True,))
    o = objectives.llm_serving_objective("Llama-3.1-8B", workload=serving.Workload(rate=1.0, input_len=1024,
                                                                                     output_len=128),
                                         slo=serving.SLO(ttft_ms=500, tpot_ms=50, percentile="p99"), n_requests=600)
    row = objectives.smallest_deployment(space, o, 12.0)
    assert row["n_gpus"] == 1 and row["ttft_ms_p99"] <= 500 and row["tpot_ms_p99"] <= 50
    with pytest.raises(ValueError, match="no configuration"):
        objectives.smallest_deployment(space, o, 5000.0)


def test_smallest_deployment_prefers_measured_numbers_among_equals(monkeypatch):
    # at a fixed rate every deployment that keeps up costs the same per token: int8 on B200 (here without the FP8
    # table it borrows, `measured.borrowed_gemm`: the roofline) ties with fp8 and fp4 (the measured tables) and comes
    # first in the grid
    from objectives.inference import measured
    monkeypatch.setattr(measured, "borrowed_gemm", lambda prof, peaks: (None, 1.0))
    space = spaces.llm_serving("Llama-3.1-8B", ["B200"], max_gpus=1, formats=["int8", "fp8", "fp4"],
                               kv_dtypes=["fp8"], max_batch_sizes=(64,), max_num_tokens=(8192,), chunked_prefill=(True,))
    o = objectives.llm_serving_objective("Llama-3.1-8B", workload=serving.Workload(rate=6.0, input_len=1024,
                                                                                     output_len=128),
                                         slo=serving.SLO(ttft_ms=500, tpot_ms=50, percentile="p99"), n_requests=400)
    grid = space.grid()
    m = o(grid)
    assert list(grid["weight_dtype"]) == ["int8", "fp8", "fp4"]
    assert list(m["source"]) == ["roofline", "interpolated", "interpolated"] and (m["fits"] == 1.0).all()
    assert m["usd_per_mtok"].iloc[0] == pytest.approx(m["usd_per_mtok"].min(), rel=1e-12)   # tied to the last ulp
    assert m["usd_per_mtok"].min() == pytest.approx(m["usd_per_mtok"].max(), rel=1e-12)
    row = objectives.smallest_deployment(space, o, 6.0)
    # measured numbers first, then the quality proxy (fp8 above fp4)
    assert row["weight_dtype"] == "fp8" and row["source"] == "interpolated"


def test_dse_capacity_command(capsys):
    from objectives.serving.cli import main

    assert main(["Llama-3.1-8B", "--gpu", "H100", "--ttft-ms", "500", "--tpot-ms", "50", "--input-len", "1024",
                 "--output-len", "128", "--analytical"]) == 0
    assert "requests/s at ttft_ms_p99 <= 500 ms" in capsys.readouterr().out
    assert main(["Llama-3.1-8B", "--gpu", "H100", "--ttft-ms", "500", "--percentile", "p95"]) == 2
    assert "valid: mean, p50, p90, p99" in capsys.readouterr().err
    from dse.cli import main as dse_main  # registered in the dse.commands entry-point group

    assert dse_main(["capacity", "Llama-3.1-8B", "--gpu", "H100", "--tpot-ms", "50", "--analytical"]) == 0
    assert "holds" in capsys.readouterr().out


# -- confirming a front (generic engine helper) -----------------------------------------------------------------

def test_confirming_removes_points_that_fail_the_slower_check(tmp_path):
    space = dse.Space(x=dse.Categorical([1, 2, 3, 4, 5, 6]))

    @dse.vectorized
    def fast(df):      # screening: every point feasible, and x against -x: all on the front
        x = df["x"].to_numpy(float)
        return pd.DataFrame({"a": x, "b": -x, "lat": np.full(len(x), 1.0)})

    @dse.vectorized
    def slow(df):      # the faithful check: odd x are too slow
        x = df["x"].to_numpy(float)
        return pd.DataFrame({"a": x + 0.5, "b": -x, "lat": np.where(x % 2 == 1, 5.0, 1.5)})

    objs, cons = {"a": "max", "b": "max"}, {"lat": ("<=", 2.0)}
    ev = Confirming(fast, slow, objs, cons, label="slow")
    assert objective_info(ev)["vectorized"] and ev.constraints == cons
    study = dse.create_study("confirm", space, objs, constraints=cons, storage=f"sqlite:///{tmp_path / 'c.db'}")
    study.optimize(ev, optimizer="grid", progress=False, batch_size=6)
    front = study.pareto()
    assert sorted(front["x"]) == [2, 4, 6] and (front["fidelity"] == "slow").all()
    t = study.trials.set_index("x")
    assert t.loc[1, "confirm_reason"] == "lat = 5 > 2" and not t.loc[1, "feasible"]
    assert t.loc[2, "lat_screen"] == 1.0 and t.loc[2, "lat"] == 1.5
    assert t.loc[2, "a"] == 2.0 and t.loc[2, "a_slow"] == 2.5          # objectives keep the screening values
    res = ev.history[-1]
    assert res.gap("lat") == pytest.approx((0.8 + 1 / 3) / 2) and "3 left the front" in res.summary()   # median
    assert len(res.rejected) == 3 and res.rounds == 1
    with pytest.raises(dse.ObjectiveError, match="directions"):
        Confirming(fast, slow, {"a": "maximize"})


def test_confirming_rounds_reach_points_the_rejected_ones_hid():
    configs = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    screen = pd.DataFrame({"a": [3.0, 2.0, 1.0], "lat": [1.0, 1.0, 1.0]})        # x=1 dominates the others

    def slow(cfg):      # one config -> dict: x=1 and x=2 fail in the check
        return {"a": 4.0 - cfg["x"], "lat": 1.0 if cfg["x"] == 3 else 9.0}

    out, res = confirm(configs, screen, slow, {"a": "max"}, {"lat": ("<=", 2.0)}, label="sim")
    assert res.rounds == 3 and res.checked == [0, 1, 2] and res.front == [2]
    assert list(out["fidelity"]) == ["sim"] * 3 and out["confirm_reason"].iloc[2] == ""


def test_flagship_sized_check_every_printed_point_meets_the_slo_in_simulation(tmp_path):
    """The flagship's workload and SLO on a smaller space: every front point meets p99 TTFT and p99 TPOT when
    simulated again, directly with serving.simulate and the study's workload."""
    space = spaces.llm_serving(MODEL, ["H100", "B200"], 4, formats=["fp8", "fp4"], kv_dtypes=["fp8"],
                               max_batch_sizes=(16, 64, 256), max_num_tokens=(2048, 8192), chunked_prefill=(True,))
    objs = {"tok_s_per_gpu": "max", "tok_s_per_user": "max", "usd_per_mtok": "min"}
    obj = objectives.llm_serving_objective(MODEL, workload=RATE4, slo=P99).confirming(objs)
    study = dse.create_study("mini_flagship", space, objs, constraints=obj.constraints,
                             storage=f"sqlite:///{tmp_path / 'f.db'}")
    study.optimize(obj, optimizer="grid", progress=False, batch_size=10_000)
    front = study.pareto()
    assert len(front) >= 2 and (front["fidelity"] == "simulated").all()
    for _, r in front.iterrows():
        m = serving.simulate(MODEL, r["gpu"], int(r["tp"]), int(r["pp"]), r["weight_dtype"], r["act_dtype"],
                             r["kv_dtype"], workload=RATE4,
                             scheduler=serving.Scheduler(max_batch_size=int(r["max_batch_size"]),
                                                         max_num_tokens=int(r["max_num_tokens"])))
        assert meets(m, P99), (r["number"], m["ttft_ms_p99"], m["tpot_ms_p99"])
    # the screening caught the slot queue of small batch limits: nothing the analytical model passed at p99 TTFT
    # <= 2 s misses it by more than a factor of 2 in simulation
    res = obj.history[-1]
    assert (res.screen["ttft_ms_p99"] < 2 * 2000).all(), res.screen


# -- heterogeneous disaggregated pools (xPyD) ---------------------------------------------------------------------

def test_prefill_pool_with_its_own_gpu_type_and_tp():
    from objectives import catalog

    w = serving.Workload(rate=6.0, input_len=2048, output_len=256)
    o = objectives.llm_serving_objective(MODEL, workload=w, slo=P99, n_requests=800)
    base = cfg(mode="disagg", dp=3, prefill_replicas=2)
    rows = pd.DataFrame([base, {**base, "prefill_gpu": "H100-SXM-80GB", "prefill_tp": 2}])
    a, s = o(rows), o.at_fidelity("simulated")(rows)
    assert list(a["n_gpus"]) == [12, 8]                              # 2 x TP 4 + 1 x TP 4; 2 x TP 2 + 1 x TP 4
    price = catalog.gpu_table(np.array(["H100-SXM-80GB", "H200-SXM-141GB"]))["price_usd_per_hour"]
    hourly = 4 * price[0] + 4 * price[1]
    assert a["usd_per_mtok"].iloc[1] == pytest.approx(hourly / 3600 / a["throughput_tok_s"].iloc[1] * 1e6, rel=1e-6)
    for col, tol in (("throughput_tok_s", 0.03), ("tpot_ms", 0.2), ("ttft_ms_p99", 0.6)):
        assert (np.abs(a[col] / s[col] - 1) < tol).all(), (col, a[col].tolist(), s[col].tolist())
    # rate matching: each pool's capacity; the H100 TP 2 prefill pool serves fewer requests/s than the H200 TP 4 one
    assert (a["prefill_pool_req_s"] > 6).all() and a["prefill_pool_req_s"].iloc[1] < a["prefill_pool_req_s"].iloc[0]
    assert a["decode_pool_req_s"].iloc[1] == pytest.approx(a["decode_pool_req_s"].iloc[0])
    # the slower prefill pool (H100 TP 2) gives a longer first token than H200 TP 4, in both fidelities
    assert a["ttft_ms"].iloc[1] > a["ttft_ms"].iloc[0] and s["ttft_ms"].iloc[1] > s["ttft_ms"].iloc[0]


def test_stored_confirmation_reads_the_checked_trials_and_what_they_violated():
    import pandas as pd

    from dse.fidelity import stored_confirmation, violated
    assert violated(["ttft_ms_p99 = 3.1 > 2", "tpot_ms_p99 = 9 > 5", "ttft_ms_p99 = 4 > 2", ""]) == \
        ["tpot_ms_p99", "ttft_ms_p99"]
    assert stored_confirmation(pd.DataFrame({"x": [1]}), "simulated") is None
    t = pd.DataFrame({"fidelity": ["screen", "simulated", "simulated"],
                      "confirm_reason": ["", "", "ttft_ms_p99 = 3.1 > 2"]})
    checked, left, why = stored_confirmation(t, "simulated")
    assert len(checked) == 2 and list(left.index) == [2] and why == ["ttft_ms_p99"]


def test_the_confirmed_objective_reports_the_stored_confirmation_in_one_sentence():
    # what the serving studies' `after` steps print: counts, an optional detail on the simulated trials, the
    # constraints that sent points off the front; nothing before a confirmation
    from types import SimpleNamespace
    ev = objectives.llm_serving_objective("Llama-3.1-8B").confirming({"usd_per_mtok": "min"})
    assert ev.report(SimpleNamespace(trials=pd.DataFrame({"x": [1]}))) is None
    t = pd.DataFrame({"fidelity": ["screen", "simulated", "simulated"], "mode": ["agg", "agg", "disagg"],
                      "confirm_reason": ["", "", "ttft_ms_p99 = 3.1 > 2"]})
    study = SimpleNamespace(trials=t)
    assert ev.report(study) == ("front confirmed in simulation: 2 configurations simulated, 1 missed the SLO and "
                                "left the front (ttft_ms_p99)")
    assert ev.report(study, detail=lambda sim: f"{(sim['mode'] == 'disagg').sum()} disaggregated") == (
        "front confirmed in simulation: 2 configurations simulated (1 disaggregated), 1 missed the SLO and left "
        "the front (ttft_ms_p99)")


def test_the_confirmed_objective_keeps_the_analytical_slo_and_mean_latencies_and_reports_their_gap():
    # issue 14's front gap: the SLO's metrics (constrained: kept as <metric>_screen anyway) and the mean TTFT and
    # TPOT (kept so on purpose) compared on the front's simulated rows; screened-only rows do not count
    from types import SimpleNamespace
    ev = objectives.llm_serving_objective("Llama-3.1-8B", slo=P99).confirming({"usd_per_mtok": "min"})
    assert ev.gap_metrics == ("ttft_ms_p99", "tpot_ms_p99", "ttft_ms", "tpot_ms") == ev.keep
    front = pd.DataFrame({"fidelity": ["simulated", "simulated", "screen"],
                          "ttft_ms_p99": [1000.0, 500.0, 1.0], "ttft_ms_p99_screen": [900.0, 600.0, np.nan],
                          "tpot_ms_p99": [50.0, 40.0, 1.0], "tpot_ms_p99_screen": [50.0, 30.0, np.nan],
                          "ttft_ms": [200.0, 100.0, 1.0], "ttft_ms_screen": [220.0, 100.0, np.nan]})
    g = ev.gaps(front)
    assert g.loc["ttft_ms_p99", "median"] == pytest.approx(0.15) and g.loc["ttft_ms_p99", "max"] == pytest.approx(0.2)
    assert g.loc["tpot_ms_p99", "max"] == pytest.approx(0.25) and g.loc["tpot_ms", "n"] == 0
    assert ev.gap_report(SimpleNamespace(pareto=lambda: front)) == (
        "analytical vs simulated on the front's 2 simulated points, median |a - s| / s: ttft_ms_p99 15.0 % (max 20 %), "
        "tpot_ms_p99 12.5 % (max 25 %), ttft_ms 5.0 % (max 10 %)")
    assert ev.gap_report(SimpleNamespace(pareto=lambda: front.iloc[2:])) is None
    # what the studies' `after` step prints: both lines, the sentence with the study's note; neither where None
    assert ev.after_text(SimpleNamespace(trials=front.assign(confirm_reason=""), pareto=lambda: front),
                         note="; met") == (
        "front confirmed in simulation: 2 configurations simulated, 0 missed the SLO and left the front; met\n"
        f"{ev.gap_report(SimpleNamespace(pareto=lambda: front))}")
    assert ev.after_text(SimpleNamespace(trials=pd.DataFrame({"x": [1]}), pareto=lambda: front.iloc[2:]),
                         note="; met") == ""


# -- the one scheduler mapping -----------------------------------------------------------------------------------

def test_non_chunked_prefill_is_one_policy_in_every_fidelity():
    """Without chunked prefill the analytical model's rows are decode-priority scheduling with whole prompts
    (serving.scheduler.MODELLED_POLICY); the objective's simulated fidelity and the capacity search take that
    policy too (they took prefill_first: 118 vs 79 ms analytical and 94 ms decode_priority for Llama-3.1-8B fp8
    on an H100 at 19.5 req/s; ~8x at 20 req/s with the factors of 2026-12-03, where the analytical capacity now
    falls just under the offered rate)."""
    from objectives.serving.scheduler import MODELLED_POLICY

    knobs = dict(max_batch_size=256, max_num_tokens=8192, chunked_prefill=False)
    s = serving.Scheduler.of_knobs(**knobs)
    assert s.policy == MODELLED_POLICY == "auto" and not s.chunked_prefill
    assert s.policy_of("roofline") == s.policy_of("vllm") == "decode_priority"
    assert s.policy_of("sglang") == "prefill_first"     # SGLang's prefill batches run alone
    w = serving.Workload(rate=19.5, input_len=2048, output_len=256, n_requests=400)
    o = objectives.llm_serving_objective("Llama-3.1-8B", workload=w, n_requests=400)
    # the closed form, whose capacity sits just above this rate (the policy, not the engine, is under test)
    row = pd.DataFrame([dict(gpu="H100-SXM-80GB", tp=1, weight_dtype="fp8", act_dtype="fp8", kv_dtype="fp8",
                             engine="roofline", **knobs)])
    a, sim = o(row).iloc[0], o.at_fidelity("simulated")(row).iloc[0]
    direct = serving.simulate("Llama-3.1-8B", "H100", weight_dtype="fp8", act_dtype="fp8", kv_dtype="fp8",
                              workload=w, scheduler=serving.Scheduler(**knobs, policy=MODELLED_POLICY),
                              engine="roofline")
    assert sim["ttft_ms"] == pytest.approx(direct["ttft_ms_mean"], rel=1e-9)
    assert a["ttft_ms"] == pytest.approx(sim["ttft_ms"], rel=0.35)
    # the capacity search's analytical bracket: the same knobs, not chunked prefill in disguise
    slo = serving.SLO(ttft_ms=500, tpot_ms=40, percentile="p99")
    cap = serving.capacity("Llama-3.1-8B", "H100", weight_dtype="fp8", act_dtype="fp8", kv_dtype="fp8", slo=slo,
                           workload=w, scheduler=s, fidelity="analytical", n_requests=400, engine="roofline")
    sm = serving.ServingModel("Llama-3.1-8B", serving.Workload(rate=1.0, input_len=2048, output_len=256,
                                                               n_requests=400))
    d = serving.Deployments.of(gpu="H100", weight_dtype="fp8", act_dtype="fp8", kv_dtype="fp8", engine="roofline",
                               **knobs)
    assert cap["capacity_req_s"] == pytest.approx(float(sm.capacity(d, slo, tol=0.05)[0]), rel=1e-9)
    chunked = float(sm.capacity(serving.Deployments.of(gpu="H100", weight_dtype="fp8", act_dtype="fp8",
                                                       kv_dtype="fp8", engine="roofline",
                                                       **{**knobs, "chunked_prefill": True}), slo, tol=0.05)[0])
    assert cap["capacity_req_s"] != pytest.approx(chunked, rel=0.02)
    with pytest.raises(ValueError, match=r"models Scheduler policy='decode_priority'.*got policy='prefill_first'"):
        serving.capacity("Llama-3.1-8B", "H100", slo=slo, workload=w, fidelity="analytical",
                         scheduler=serving.Scheduler(**knobs, policy="prefill_first"))


def test_capacity_and_metrics_of_a_batch_are_each_deployments_own() -> None:
    # the searches test several occupancies / rates per deployment in one call, more of them the fewer the
    # deployments (serving.bisection): a deployment's numbers must not depend on what it is evaluated with
    sm = serving.ServingModel(MODEL, serving.Workload(rate=4.0, input_len=2048, output_len=256, n_requests=2000))
    rows = [dict(gpu="H200", tp=4, weight_dtype="fp8", kv_dtype="fp8", engine="vllm"),
            dict(gpu="H100", tp=2, weight_dtype="fp8", kv_dtype="fp8", engine="trtllm", max_batch_size=64),
            dict(gpu="B200", tp=1, weight_dtype="fp4", engine="sglang", chunked_prefill=False),
            dict(gpu="H100", tp=8, pp=1, engine="roofline", max_num_tokens=2048)]
    cols = {k: [r.get(k) for r in rows] for k in dict.fromkeys(k for r in rows for k in r)}
    defaults = dict(pp=1, max_batch_size=256, max_num_tokens=8192, chunked_prefill=True, weight_dtype=None,
                    kv_dtype=None)
    for k, v in defaults.items():
        cols[k] = [v if x is None else x for x in cols.get(k, [None] * len(rows))]
    both = serving.Deployments.of(**cols)
    cap = sm.capacity(both, P99, tol=0.01)
    met = sm.evaluate(both, P99)
    assert np.all(cap > 0.5)
    for i in range(len(rows)):
        one = both.take(np.array([i]))
        assert sm.capacity(one, P99, tol=0.01)[0] == cap[i]
        alone = sm.evaluate(one, P99).iloc[0]
        for m in ("ttft_ms", "ttft_ms_p99", "tpot_ms_p99", "batch_size", "requests_per_s"):
            assert alone[m] == met[m].iloc[i], (i, m)


def test_capacity_of_a_trace_replays_its_own_arrivals_and_lengths(capsys):
    """A trace's capacity is the rate at which the trace itself, replayed faster or slower (`Trace.to_rate`), meets
    the SLO: its bursts kept, not Poisson arrivals at its mean rate. Before, the search replaced the arrivals by
    Poisson ones: on the Azure 2023 conversation trace (Llama-3.1-8B, H100 fp8, p99 TTFT <= 1 s) it reported
    28.8 req/s, where the replayed trace has p99 TTFT 2.55 s. A closed-loop trace keeps its lengths too."""
    from tests.helpers import SHARED

    t = serving.read_trace(SHARED / "traces" / "azure_llm_2023_conv.csv").head(1500)
    slo = serving.SLO(ttft_ms=1000, tpot_ms=100, percentile="p99")
    kw = dict(tp=1, weight_dtype="fp8", slo=slo, n_requests=1000)
    r = serving.capacity("Llama-3.1-8B", "H100", workload=serving.Workload(trace=t), **kw)
    cap = r["capacity_req_s"]
    # measured as capacity measures a rate: over the run's steady part (`simulate(discard="steady")`)
    replay = serving.simulate("Llama-3.1-8B", "H100", tp=1, weight_dtype="fp8", discard="steady",
                              workload=serving.Workload(trace=t.head(1000).to_rate(cap)))
    assert meets(replay, slo) and meets(r["metrics"], slo)
    above = serving.simulate("Llama-3.1-8B", "H100", tp=1, weight_dtype="fp8", discard="steady",
                             workload=serving.Workload(trace=t.head(1000).to_rate(cap * 1.15)))
    assert not meets(above, slo)
    assert r["metrics"]["ttft_ms_p99"] == pytest.approx(replay["ttft_ms_p99"])
    # the trace's lengths whatever the arrivals: a closed-loop trace is searched over Poisson rates of its lengths
    closed = serving.capacity("Llama-3.1-8B", "H100", workload=serving.Workload(trace=t, concurrency=8),
                              fidelity="analytical", **kw)
    poisson = serving.capacity("Llama-3.1-8B", "H100", workload=serving.Workload(trace=t, rate=1.0),
                               fidelity="analytical", **kw)
    fixed = serving.capacity("Llama-3.1-8B", "H100", fidelity="analytical", **kw)
    assert closed["capacity_req_s"] == poisson["capacity_req_s"] != fixed["capacity_req_s"]


def test_dse_capacity_command_reads_a_trace(capsys):
    """``dse capacity --trace FILE``: any layout `serving.read_trace` knows (its lengths and, replayed at each rate,
    its arrivals); ``--help`` states the whole purpose (its first line was cut mid-sentence)."""
    from objectives.serving.cli import build_parser, main
    from tests.helpers import SHARED

    assert build_parser().description.endswith("target rate.")
    path = str(SHARED / "traces" / "azure_llm_2023_code.csv")
    assert main(["Llama-3.1-8B", "--gpu", "H100", "--weight-dtype", "fp8", "--ttft-ms", "1000", "--tpot-ms", "100",
                 "--trace", path, "--analytical"]) == 0
    out = capsys.readouterr().out
    w = serving.Workload(trace=serving.read_trace(path))
    ana = serving.capacity("Llama-3.1-8B", "H100", weight_dtype="fp8", workload=w, fidelity="analytical",
                           slo=serving.SLO(ttft_ms=1000, tpot_ms=100, percentile="p99"))
    assert f"holds {ana['capacity_req_s']:.3g} requests/s" in out and "azure" in out
    assert main(["Llama-3.1-8B", "--gpu", "H100", "--tpot-ms", "50", "--trace", "/nonexistent.csv"]) == 2
    assert "does not exist" in capsys.readouterr().err
    # the smallest deployment for a target rate replays the trace at that rate too
    assert main(["Llama-3.1-8B", "--target-rate", "8", "--gpus", "H100", "--max-gpus", "1", "--ttft-ms", "1000",
                 "--tpot-ms", "100", "--trace", path.replace("code", "conv"), "--n-requests", "300"]) == 0
    assert "smallest deployment holding 8 requests/s" in capsys.readouterr().out


def test_capacity_of_an_slo_no_rate_meets_is_zero_after_one_check_at_the_floor():
    """An SLO missed even when requests arrive one at a time: capacity 0 from a run at `capacity.MIN_RATE`, not
    after ~30 ever slower runs (a Mooncake trace took 41 simulations to say 0)."""
    from objectives.serving.capacity import MIN_RATE

    slo = serving.SLO(ttft_ms=5, tpot_ms=100, percentile="p99")      # no prefill of 1,024 tokens takes 5 ms
    r = serving.capacity("Llama-3.1-8B", "H100", weight_dtype="fp8", slo=slo, n_requests=50,
                         workload=serving.Workload(rate=1.0, input_len=1024, output_len=16))
    assert r["capacity_req_s"] == 0.0 and r["n_simulations"] == 2
    assert r["metrics"]["ttft_ms_p99"] > 5
    alone = serving.simulate("Llama-3.1-8B", "H100", weight_dtype="fp8", workload=serving.Workload(
        rate=MIN_RATE, input_len=1024, output_len=16, n_requests=50))
    assert r["metrics"]["ttft_ms_p99"] == pytest.approx(alone["ttft_ms_p99"])


def test_bursty_arrivals_and_mixed_prompt_lengths_queue_longer_in_the_analytical_model():
    """The analytical prompt queue is Kingman's G/G/1 (waits x (ca^2 + cs^2) against M/D/1): gamma arrivals with
    cv = 4 at 6 req/s (Llama-3.1-70B fp8, H200 TP 4) had an analytical p99 TTFT of 669 ms, the same as Poisson
    arrivals, where the simulator gives 11,966 ms (0.06x); lognormal prompt lengths 0.43x, the Azure 2023
    conversation trace 0.50x. Poisson arrivals of fixed lengths keep the M/D/1 queue, bit for bit."""
    assert serving.Workload(rate=4.0).variability() == (1.0, 0.0)
    assert serving.Workload(rate=4.0, arrival="gamma", cv=3.0).variability() == (9.0, 0.0)
    slo = serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99")
    d = serving.Deployments.of(gpu="H200", tp=4, weight_dtype="fp8", kv_dtype="fp8")
    lengths = serving.Dist("lognormal", mean=2048, std=2048, max=16000)
    for w in (serving.Workload(rate=6.0, arrival="gamma", cv=4.0, input_len=2048, output_len=256, n_requests=2000),
              serving.Workload(rate=3.0, arrival="gamma", cv=2.0, input_len=2048, output_len=256, n_requests=2000),
              serving.Workload(rate=6.0, input_len=lengths, output_len=256, n_requests=2000)):
        ana = serving.ServingModel(MODEL, w).evaluate(d, slo).iloc[0]
        sim = serving.simulate(MODEL, "H200", tp=4, weight_dtype="fp8", kv_dtype="fp8", workload=w)
        assert 0.6 < ana["ttft_ms_p99"] / sim["ttft_ms_p99"] < 1.5, (w, ana["ttft_ms_p99"], sim["ttft_ms_p99"])
        assert 0.5 < ana["ttft_ms"] / sim["ttft_ms_mean"] < 1.5, (w, ana["ttft_ms"], sim["ttft_ms_mean"])
    from tests.helpers import SHARED

    t = serving.read_trace(SHARED / "traces" / "azure_llm_2023_conv.csv").head(2000)
    w = serving.Workload(trace=t.scale_rate(4.0))
    d8 = serving.Deployments.of(gpu="H100", tp=1, weight_dtype="fp8", kv_dtype="fp8")
    ana = serving.ServingModel("Llama-3.1-8B", w).evaluate(d8, slo).iloc[0]
    sim = serving.simulate("Llama-3.1-8B", "H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", workload=w)
    assert 0.6 < ana["ttft_ms_p99"] / sim["ttft_ms_p99"] < 1.5, (ana["ttft_ms_p99"], sim["ttft_ms_p99"])
    # the disaggregated prefill pool's queue too (2 H100 TP 2 prefill workers, 1 H200 TP 4 decode worker, cv = 3:
    # analytical p99 TTFT 663 ms before, simulated 2,018 ms)
    w = serving.Workload(rate=6.0, arrival="gamma", cv=3.0, input_len=2048, output_len=256, n_requests=2000)
    dd = serving.Deployments.of(gpu="H200", tp=4, weight_dtype="fp8", kv_dtype="fp8", mode="disagg", dp=3,
                                prefill_replicas=2, prefill_gpu="H100", prefill_tp=2)
    ana = serving.ServingModel(MODEL, w).evaluate(dd, slo).iloc[0]
    sim = serving.simulate(MODEL, "H200", tp=4, weight_dtype="fp8", kv_dtype="fp8", mode="disagg", workload=w,
                           prefill=serving.Pool(gpu="H100", tp=2, n_workers=2), decode=serving.Pool(n_workers=1))
    assert 0.6 < ana["ttft_ms_p99"] / sim["ttft_ms_p99"] < 1.5, (ana["ttft_ms_p99"], sim["ttft_ms_p99"])
    # Poisson arrivals of fixed lengths: the M/D/1 queue (burst factor exactly 1)
    assert serving.ServingModel(MODEL, RATE4).burst == 1.0


def test_dse_capacity_costs_a_quantized_checkpoint_in_its_own_format_by_default(capsys):
    """`dse capacity` without --weight-dtype costs the checkpoint's format (inference.estimate's rule for
    weight_dtype None): an FP8 checkpoint in fp8, not in bf16 (its default was "bf16")."""
    from objectives.serving.cli import main

    args = ["nvidia/Llama-3.1-70B-Instruct-FP8", "--gpu", "H200", "--tp", "4", "--ttft-ms", "2000", "--tpot-ms",
            "200", "--analytical"]
    assert main(args) == 0
    out = capsys.readouterr().out
    slo = serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99")
    fp8 = serving.capacity("nvidia/Llama-3.1-70B-Instruct-FP8", "H200", 4, weight_dtype="fp8", slo=slo,
                           fidelity="analytical")["capacity_req_s"]
    bf16 = serving.capacity("nvidia/Llama-3.1-70B-Instruct-FP8", "H200", 4, weight_dtype="bf16", slo=slo,
                            fidelity="analytical")["capacity_req_s"]
    assert f"{fp8:.3g}" != f"{bf16:.3g}"
    assert f"tp=4 pp=1) fp8: holds {fp8:.3g} requests/s" in out
    assert main([*args, "--weight-dtype", "bf16"]) == 0           # the flag still overrides it
    assert f"tp=4 pp=1) bf16: holds {bf16:.3g} requests/s" in capsys.readouterr().out
    assert main(["Llama-3.1-8B", "--gpu", "H100", "--tpot-ms", "100", "--analytical"]) == 0   # unquantized: bf16
    assert "tp=1 pp=1) bf16: holds" in capsys.readouterr().out


def test_a_configuration_the_check_refuses_leaves_the_front_with_the_checks_own_reason():
    """A check that refuses a configuration (fits 0, its reason in a text metric) had it leave the front as
    "fits = 0 != 1" (or "<metric> missing"): the constraint checked, not why. The text metric the objective names
    (``failure=``) is carried into ``confirm_reason``."""
    from dse.fidelity import Confirming, violated
    configs = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    screen = pd.DataFrame({"a": [3.0, 2.0, 1.0], "lat": [1.0, 1.0, 1.0], "fits": [1.0, 1.0, 1.0]})
    cons = {"lat": ("<=", 2.0), "fits": ("==", 1.0)}

    def slow(cfg):      # x=1 refused with a reason of its own, x=2 too slow, x=3 fine
        if cfg["x"] == 1:
            return {"fits": 0.0, "why": "request 0 needs 9000 KV tokens but a replica holds 8000"}
        return {"a": 4.0 - cfg["x"], "lat": 9.0 if cfg["x"] == 2 else 1.0, "fits": 1.0, "why": ""}

    out, res = confirm(configs, screen, slow, {"a": "max"}, cons, label="sim")
    assert out["confirm_reason"].iloc[0] == "fits = 0 != 1"          # without a failure metric: the constraint only
    out, res = confirm(configs, screen, slow, {"a": "max"}, cons, label="sim", failure="why")
    assert out["confirm_reason"].iloc[0] == "fits = 0 != 1: request 0 needs 9000 KV tokens but a replica holds 8000"
    assert out["confirm_reason"].iloc[1] == "lat = 9 > 2" and out["confirm_reason"].iloc[2] == ""
    assert violated(res.rejected.values()) == ["fits", "lat"] and res.front == [2]
    assert "violating fits, lat" in res.summary()
    # a refusal that violates no constraint would stay on the front with its screening values: said, not kept
    with pytest.raises(dse.ObjectiveError, match=r"refused configuration 0 \('request 0 needs.*'\) but it violates "
                                                 r"no constraint"):
        confirm(configs, screen, slow, {"a": "max"}, {"lat": ("<=", 2.0)}, label="sim", failure="why")
    with pytest.raises(dse.ObjectiveError, match=r"failure=3: give the name of a text metric"):
        Confirming(lambda df: df, slow, {"a": "max"}, cons, failure=3)


def test_the_confirmed_serving_objective_names_the_simulators_reason_metric():
    from objectives import llm_serving_objective
    obj = llm_serving_objective("Llama-3.1-8B", workload={"rate": 1.0, "input_len": 512, "output_len": 64},
                                slo={"ttft_ms_p99": 2000})
    ev = obj.confirming({"usd_per_mtok": "min"})
    assert ev.failure == "reason"
