"""TensorRT-LLM's attention-DP balance in the serving simulator (`Scheduler.adp_balance`, `engine._Group._release`):
while every rank decodes, a prompt waits until every rank has one (then ``batching_wait_iters`` more iterations) or
until ``timeout_iters`` iterations have passed since the last release; and in the closed form
(`inference.max_throughput(adp_balance=...)`), which it brings back towards the aligned ranks' cycle."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytest

from objectives import inference, serving
from objectives.inference.lockstep import AdpBalance
from objectives.serving import PoolCosts, Scheduler, Workload, simulate_costs
from objectives.serving.simulator import _frame, _run
from tests.objectives.serving.test_serving import AffineCost


@dataclass(frozen=True)
class Flat(AffineCost):
    """A decode step of exactly `fixed` ms whatever the batch; its attention-DP ranks step together."""

    per_seq: float = 0.0
    per_kv: float = 0.0
    steps_in_lockstep: bool = True


FLAT = Flat()
SHORT = 16
PROMPT_MS = FLAT.time_ms(SHORT, SHORT * (SHORT + 1) / 2, 0, 0)       # a 16-token prompt's step (8.8 ms)


def _late(n_late: int, balance: AdpBalance | None) -> pd.DataFrame:
    """Two ranks each decoding one long request from t = 0; at 100 ms `n_late` short prompts (2 output tokens)."""
    trace = pd.DataFrame({"arrival_s": [0.0, 0.0] + [0.1] * n_late, "input_tokens": [SHORT] * (2 + n_late),
                          "output_tokens": [400, 400] + [2] * n_late})
    return simulate_costs(FLAT, workload=Workload(trace=trace), attn_dp=2, per_request=True,
                          scheduler=Scheduler(adp_balance=balance))


def test_a_lone_prompt_waits_for_the_timeout_counted_from_the_last_release():
    """The first prompts run at once (no rank decodes yet): that is the last release. The late prompt reaches one
    rank only, so it runs at the 50th iteration after that one (each 8 ms), not at the next step boundary."""
    off, on = _late(1, None), _late(1, AdpBalance())
    assert list(on["replica"]) == [0, 1, 0]
    boundary = PROMPT_MS + 12 * FLAT.fixed                  # the first step boundary after 100 ms
    np.testing.assert_allclose(off["first_token_s"].iloc[2] * 1e3, boundary + PROMPT_MS, rtol=1e-9)
    np.testing.assert_allclose(on["first_token_s"].iloc[2] * 1e3, PROMPT_MS + 49 * FLAT.fixed + PROMPT_MS, rtol=1e-9)
    short = _late(1, AdpBalance(timeout_iters=20))
    np.testing.assert_allclose(short["first_token_s"].iloc[2] * 1e3, PROMPT_MS + 19 * FLAT.fixed + PROMPT_MS,
                               rtol=1e-9)


def test_prompts_on_every_rank_run_after_the_batching_wait():
    off, on = _late(2, None), _late(2, AdpBalance())
    assert sorted(on["replica"].iloc[2:]) == [0, 1]
    boundary = PROMPT_MS + 12 * FLAT.fixed
    np.testing.assert_allclose(off["first_token_s"].iloc[2:] * 1e3, boundary + PROMPT_MS, rtol=1e-9)
    # ten iterations held (every rank has a prompt and decodes), the eleventh runs them
    np.testing.assert_allclose(on["first_token_s"].iloc[2:] * 1e3, boundary + 10 * FLAT.fixed + PROMPT_MS,
                               rtol=1e-9)
    waitless = _late(2, AdpBalance(batching_wait_iters=0))
    np.testing.assert_allclose(waitless["first_token_s"].iloc[2:], off["first_token_s"].iloc[2:], rtol=1e-12)


def test_the_balance_leaves_ranks_apart_and_single_ranks_alone():
    trace = pd.DataFrame({"arrival_s": [0.0, 0.0, 0.1], "input_tokens": [SHORT] * 3, "output_tokens": [400, 400, 2]})
    w = Workload(trace=trace)
    for cost, adp in ((Flat(steps_in_lockstep=False), 2), (FLAT, 1)):
        off = simulate_costs(cost, workload=w, attn_dp=adp, per_request=True)
        on = simulate_costs(cost, workload=w, attn_dp=adp, per_request=True, scheduler=Scheduler(adp_balance=True))
        pd.testing.assert_frame_equal(off, on)


@pytest.mark.parametrize("attn_dp", [2, 4])
def test_segments_under_the_balance_equal_stepping_every_iteration(attn_dp):
    """The group's multi-iteration decode segments advance the balance's counter as many iterations (the same
    engine stepping one iteration at a time gives the same times), and the balance moved them."""
    w = Workload(rate=30.0, n_requests=160, seed=5, input_len=serving.Dist("uniform", low=100, high=3000),
                 output_len=serving.Dist("uniform", low=20, high=300))

    def frames(skip: bool, bal: AdpBalance | None) -> pd.DataFrame:
        s = Scheduler(max_num_tokens=2048, adp_balance=bal)
        eng, reps = _run(w, PoolCosts(FLAT, 2 * attn_dp, s, attn_dp=attn_dp), None, None, s, 0.0, "least_loaded",
                         skip=skip)
        return _frame(eng, reps)

    seg, step = frames(True, AdpBalance()), frames(False, AdpBalance())
    for k in ("first_token_s", "finish_s"):
        np.testing.assert_allclose(seg[k], step[k], rtol=2e-4)
    off = frames(True, None)
    assert seg["ttft_ms"].mean() > off["ttft_ms"].mean() + 5 * FLAT.fixed


def test_scheduler_reads_the_knob():
    assert Scheduler().adp_balance is None and Scheduler(adp_balance=False).adp_balance is None
    assert Scheduler(adp_balance=True).adp_balance == AdpBalance(10, 50)
    with pytest.raises(TypeError, match="adp_balance"):
        Scheduler(adp_balance="yes")
    with pytest.raises(ValueError, match="timeout_iters"):
        AdpBalance(timeout_iters=-1)


KW = dict(model="deepseek-ai/DeepSeek-R1", gpu="GB200", tp=1, attn_dp=8, ep=8, weight_dtype="fp4",
          engine="trtllm")


def test_wide_ep_closed_loop_simulator_and_closed_form_agree_with_and_without_the_balance():
    """DeepSeek-R1 NVFP4 on eight GB200 ranks, 32 clients a rank, 1k / 1k, ten requests a client (the closed form's
    benchmark run, `lockstep.BENCHMARK_ROUNDS`): the closed form's TPOT within 10 % of the simulator's, with and
    without the balance, which lowers both (the ranks' prompts run together) and lengthens the TTFT of both."""
    C = 8 * 32
    w = Workload(concurrency=C, input_len=1024, output_len=1024, n_requests=10 * C, seed=0)
    out = {}
    for bal in (False, True):
        sim = serving.simulate(**KW, workload=w, scheduler=Scheduler(adp_balance=bal))
        cf = inference.max_throughput(**KW, input_len=1024, output_len=1024, concurrency=C, adp_balance=bal)
        out[bal] = (sim["tpot_ms_mean"], float(cf["tpot_ms"].iloc[0]), sim["ttft_ms_mean"],
                    float(cf["ttft_ms"].iloc[0]))
        assert out[bal][1] == pytest.approx(out[bal][0], rel=0.10), out
    assert out[True][0] < out[False][0] and out[True][1] < out[False][1]
    assert out[True][2] > out[False][2] and out[True][3] > out[False][3]


# ---- the knob everywhere max_throughput has it: per row, the serving model, the objective ------------------

QWEN_TRT = dict(model="Qwen3-30B-A3B", gpu="B200", tp=1, attn_dp=4, ep=4, engine="trtllm")


def test_the_simulators_scheduler_of_the_knobs_takes_the_balance():
    """`Scheduler.of_knobs(adp_balance=)`: a study's bool, True as TensorRT-LLM's default iterations, False off
    (the default); the other knobs as given."""
    assert Scheduler.of_knobs().adp_balance is None and Scheduler.of_knobs(adp_balance=False).adp_balance is None
    on = Scheduler.of_knobs(max_batch_size=64, prefix_caching=False, adp_balance=True)
    assert on.adp_balance == AdpBalance() and on == replace(Scheduler.of_knobs(max_batch_size=64,
                                                                                 prefix_caching=False),
                                                            adp_balance=AdpBalance())


def test_max_throughput_takes_the_balance_one_per_row():
    """One bool per row prices each row as the scalar knob would; rows whose ranks do not step in lockstep (dense
    attention-DP ranks, attn_dp 1) are the same either way."""
    a = dict(QWEN_TRT, attn_dp=[4, 4, 1], input_len=2048, output_len=256, concurrency=128)
    mixed = inference.max_throughput(**a, adp_balance=[True, False, True])
    on, off = (inference.max_throughput(**a, adp_balance=b) for b in (True, False))
    for col in ("ttft_ms", "tpot_ms", "throughput_tok_s"):
        want = np.where([True, False, True], on[col], off[col])
        np.testing.assert_array_equal(mixed[col].to_numpy(), want)
    assert on["ttft_ms"].iloc[0] > off["ttft_ms"].iloc[0] and on["ttft_ms"].iloc[2] == off["ttft_ms"].iloc[2]
    with pytest.raises(ValueError, match="adp_balance"):
        inference.max_throughput(**a, adp_balance=[1, 2, 0])


def test_the_objective_and_the_serving_model_price_the_balance_as_max_throughput():
    """`llm_serving_objective`'s knob ``adp_balance`` (default False) reaches `inference.max_throughput` through the
    serving model, per configuration; the trials that carry it differ from those that do not exactly as the closed
    form's balance says."""
    from objectives import llm_serving_objective
    w = Workload(concurrency=128, input_len=2048, output_len=256)
    obj = llm_serving_objective("Qwen3-30B-A3B", workload=w)
    cfg = pd.DataFrame({"gpu": "B200", "tp": 1, "attn_dp": 4, "ep": 4, "engine": "trtllm",
                        "adp_balance": [False, True, np.nan]})     # NaN: an inactive knob, the default
    m = obj(cfg)
    mt = {b: inference.max_throughput(**QWEN_TRT, input_len=2048, output_len=256, concurrency=128,
                                      max_batch_size=32, max_num_tokens=8192, adp_balance=b) for b in (False, True)}
    for i, b in enumerate((False, True, False)):
        assert m["ttft_ms"].iloc[i] == pytest.approx(float(mt[b]["ttft_ms"].iloc[0]), rel=1e-9), i
        assert m["tpot_ms"].iloc[i] == pytest.approx(float(mt[b]["tpot_ms"].iloc[0]), rel=1e-9), i
    assert m["ttft_ms"].iloc[1] > m["ttft_ms"].iloc[0]
    d = serving.Deployments.of(gpu="B200", tp=1, attn_dp=4, ep=4, engine="trtllm", adp_balance=[False, True])
    assert list(d.adp_balance) == [False, True]
    assert list(serving.Deployments.of(gpu="B200").adp_balance) == [False]
    with pytest.raises(ValueError, match="adp_balance"):
        serving.Deployments.of(gpu="B200", adp_balance="yes")


def test_the_objectives_simulated_fidelity_runs_the_balance():
    """The simulated fidelity gives the simulator's scheduler the trial's balance (`Scheduler.adp_balance`)."""
    from objectives import llm_serving_objective
    w = Workload(concurrency=64, input_len=1024, output_len=64)
    obj = llm_serving_objective("Qwen3-30B-A3B", workload=w, fidelity="simulated", n_requests=192)
    m = obj(pd.DataFrame({"gpu": "B200", "tp": 1, "attn_dp": 4, "ep": 4, "engine": "trtllm",
                          "adp_balance": [False, True]}))
    sim = {b: serving.simulate(**QWEN_TRT, workload=Workload(concurrency=64, input_len=1024, output_len=64,
                                                             n_requests=192),
                               scheduler=replace(Scheduler.of_knobs(), adp_balance=b), discard=0)["ttft_ms_mean"]
           for b in (False, True)}
    assert m["ttft_ms"].tolist() == pytest.approx([sim[False], sim[True]], rel=1e-9)
    assert sim[True] != sim[False]


def test_capacity_takes_the_balance_into_its_simulations(capsys):
    """`serving.capacity` and `dse capacity` had no way to turn the balance on (a knob of `max_throughput`,
    `Scheduler` and `dse deploy`). ``adp_balance=`` / ``--adp-balance`` put it in every scheduler the simulations
    run: the capacity found is the one a balanced run holds (its metrics those of a balanced simulation at that
    rate) and not the unbalanced one's. The analytical estimate prices the default balance (`Deployments.adp_balance`)
    and refuses other iterations; a balance
    with no attention-DP rank to balance is refused, as is a scheduler already set to another balance."""
    from objectives.serving.capacity import capacity
    from objectives.serving.cli import main

    kw = dict(model="Qwen3-30B-A3B", gpu="H200", attn_dp=4, ep=4, engine="trtllm",
              slo={"ttft_ms_p99": 2000, "tpot_ms_p99": 100}, tol=0.1)
    on, off = capacity(**kw, adp_balance=True), capacity(**kw)
    assert on["capacity_req_s"] != off["capacity_req_s"] and on["analytical_req_s"] != off["analytical_req_s"]
    w = Workload(rate=on["capacity_req_s"], input_len=2048, output_len=256, n_requests=on["n_requests"])
    for bal, same in ((True, True), (False, False)):
        sim = serving.simulate(kw["model"], kw["gpu"], attn_dp=4, ep=4, engine="trtllm", workload=w,
                               scheduler=Scheduler(adp_balance=bal), discard="steady")
        assert (sim["ttft_ms_p99"] == on["metrics"]["ttft_ms_p99"]) is same
    assert capacity(**kw, adp_balance=True, fidelity="analytical")["capacity_req_s"] == on["analytical_req_s"]
    assert capacity(**kw, fidelity="analytical")["capacity_req_s"] == off["analytical_req_s"]
    assert capacity(**kw, scheduler=Scheduler(adp_balance=True),           # the scheduler's own too
                    fidelity="analytical")["capacity_req_s"] == on["analytical_req_s"]
    with pytest.raises(ValueError, match=r"at its default iterations only"):
        capacity(**kw, adp_balance=AdpBalance(timeout_iters=20), fidelity="analytical")
    with pytest.raises(ValueError, match=r"no pool runs attention DP \(attn_dp=1\)"):
        capacity(**{**kw, "attn_dp": 1, "ep": 1}, adp_balance=True)
    with pytest.raises(ValueError, match=r"capacity adp_balance=True and scheduler adp_balance=AdpBalance\("
                                         r"batching_wait_iters=5"):
        capacity(**kw, adp_balance=True, scheduler=Scheduler(adp_balance=AdpBalance(batching_wait_iters=5)))
    assert main(["Qwen3-30B-A3B", "--gpu", "H200", "--attn-dp", "4", "--ep", "4", "--engine", "trtllm",
                 "--ttft-ms", "2000", "--tpot-ms", "100", "--adp-balance", "--analytical"]) == 0
    out = capsys.readouterr().out
    assert "attn_dp=4 ep=4) with TensorRT-LLM's attention-DP balance" in out
    assert f"{capacity(**{**kw, 'tol': 0.05}, adp_balance=True, fidelity='analytical')['capacity_req_s']:.1f}" in out
    assert main(["Qwen3-30B-A3B", "--target-rate", "10", "--gpus", "H200", "--ttft-ms", "2000",
                 "--adp-balance"]) == 2
    assert "--adp-balance: --target-rate searches" in capsys.readouterr().err


@pytest.mark.parametrize("clients, isl", [(8, 1024), (32, 1024), (128, 1024), (8, 8192), (32, 8192)])
def test_the_closed_forms_balance_hold_follows_the_simulators_from_light_to_draining_loads(clients, isl):
    """DeepSeek-R1 NVFP4 on four GB200 ranks under the balance, ten requests a client: the closed form's TTFT within
    15 % of the simulator's where a round's last prompts wait for the timeout (8 clients a rank), where the 8k-token
    budget drains each round chunk by chunk (128 clients a rank at 1k prompts; 32 at 8k, one prompt a chunk), as
    the balance spreads the rounds (before the thirtieth round: 0.79, 2.0 and 2.3 x the simulator's); and where the
    releases run most of a chunk (32 clients a rank at 1k prompts) or a prompt a rank each (8 at 8k; before the
    thirty-first round: 0.75 and 0.69 x)."""
    kw = dict(KW, attn_dp=4, ep=4)
    C = 4 * clients
    w = Workload(concurrency=C, input_len=isl, output_len=1024, n_requests=10 * C, seed=0)
    sim = serving.simulate(**kw, workload=w, scheduler=Scheduler(adp_balance=True))
    cf = inference.max_throughput(**kw, input_len=isl, output_len=1024, concurrency=C, adp_balance=True)
    assert float(cf["ttft_ms"].iloc[0]) == pytest.approx(sim["ttft_ms_mean"], rel=0.15)


@pytest.mark.parametrize("held,all_gen", [(True, True), (True, False), (False, True), (False, False)])
def test_a_segments_closed_form_count_equals_stepping_the_balance(held: bool, all_gen: bool) -> None:
    """`_Group._count(k)` leaves the balance's counters where k calls of `_release` at the segment's state leave
    them, for each branch of `_Group._rule` (every rank holds a prompt with room; every rank decodes)."""
    from types import SimpleNamespace

    from objectives.serving.engine import _Group

    def group() -> _Group:
        ranks = [SimpleNamespace(prefilling=[1] if held else [], waiting=[], n=3 if all_gen else 0, maxb=8,
                                 adp_balance=AdpBalance(batching_wait_iters=3, timeout_iters=5), idx=i,
                                 lag=False)
                 for i in range(2)]
        ranks[1].n = 2 if all_gen else ranks[1].n
        return _Group(None, ranks)  # type: ignore[arg-type]

    for start in range(6):
        for k in range(12):
            stepped, counted = group(), group()
            for g in (stepped, counted):
                g.bal_wait, g.bal_batch = start % 5, start % 4
            for _ in range(k):
                stepped._release(0.0)
            counted.seg_rule = counted._rule(0.0)
            assert counted.seg_rule == (held, all_gen)
            counted._count(k)
            assert (counted.bal_wait, counted.bal_batch) == (stepped.bal_wait, stepped.bal_batch), (start, k)
