"""The analytical serving model on real traces near and past a replica's capacity (`ServingModel._mixture`): a
decode step is one iteration, which never holds more than ``max_num_tokens`` tokens, so no TPOT exceeds the
longest such iteration; whole prompts longer than the budget left by the decodes run alone (no decode in flight
to stall), so only the prompts that fit stall the decodes; and the decodes a whole prompt drains are the ones the
replica admitted at the rate it serves, not the rate it is offered. The simulator is the reference."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import serving
from objectives.serving import traces
from objectives.serving.analytical import Deployments, ServingModel

MODEL = "Llama-3.1-8B"
#: the analytical side's budgets these bands were sized on (Deployments.of's former default; its own is now the
#: engine's, vLLM's 1,024 / 8,192 on an H100)
FORMER = dict(max_batch_size=256, max_num_tokens=8192)
PAIRS = (("ttft_ms", "ttft_ms_mean"), ("ttft_ms_p99", "ttft_ms_p99"), ("tpot_ms", "tpot_ms_mean"),
         ("tpot_ms_p99", "tpot_ms_p99"))


def _ratios(trace: str, rate: float, chunked: bool) -> dict[str, float]:
    w = serving.Workload(trace=traces.load_sample(trace).to_rate(rate))
    d = Deployments.of(**FORMER, gpu="H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", prefix_caching=False,
                       chunked_prefill=chunked)
    ana = ServingModel(MODEL, w).evaluate(d).iloc[0]
    sim = serving.simulate(MODEL, "H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", workload=w,
                           scheduler=serving.Scheduler(prefix_caching=False, chunked_prefill=chunked))
    return {a: float(ana[a]) / float(sim[s]) for a, s in PAIRS}


@pytest.mark.parametrize("chunked", [True, False])
def test_tpot_past_capacity_stays_below_the_longest_iteration(chunked):
    """Azure 2023 code at 28.6 req/s (1.1x the replica's saturated rate; prompts ~2k tokens, outputs ~25), Llama-3.1-8B
    H100 fp8. Before: p99 TPOT 2.97x (chunked) and 3.26x (whole prompts) the simulator's (the saturated steady
    state's TPOT at the full batch, more than an iteration of max_num_tokens tokens lasts)."""
    r = _ratios("azure_code_2023", 28.6, chunked)
    assert 0.6 < r["tpot_ms_p99"] < 1.5, r


def test_whole_prompts_over_the_budget_do_not_stall_the_decodes():
    """Mooncake conversation lengths (most prompts over 8,192 tokens), whole prompts, 0.6 req/s on Llama-3.1-8B
    H100 fp8: a prompt over the budget runs only once every decode has finished, so it stalls none. Before: mean
    TPOT ~100x and p99 166x the simulator's (every prompt's prefill counted as a stall of the decodes)."""
    r = _ratios("mooncake_conversation", 0.6, False)
    assert 0.5 < r["tpot_ms"] < 2.0, r
    assert 0.5 < r["tpot_ms_p99"] < 2.0, r


@pytest.mark.parametrize("rate", [0.45, 1.15, 2.2])
def test_whole_prompt_drains_at_the_rate_served(rate):
    """Mooncake conversation, whole prompts, Llama-3.1-8B H100 fp8, below, near and far past what the drains let
    the replica serve (~0.6 req/s in the simulator): a long prompt that finds a backlog drains the whole decodes of
    the requests admitted since the previous one, those of a replica serving at its capacity. Before: mean / p99
    TTFT 2.96 / 3.01x the simulator's at 1.15 req/s and 39 / 40x at 2.2 req/s (the drains of the decodes a replica
    offered that rate would hold, at the saturated batch's decode step)."""
    r = _ratios("mooncake_conversation", rate, False)
    assert 0.55 < r["ttft_ms"] < 1.6, r
    assert 0.55 < r["ttft_ms_p99"] < 1.6, r


@pytest.mark.parametrize("trace,rate,model,gpu,tp,before,lo", [
    # Azure 2023 code sample: 63 requests, a pause of over half the span, then 437 in its last quarter (3.5x the
    # mean rate, a window of 7x): 8B H100 at 20.8 req/s (0.8x the saturated rate). Before: mean / p99 TTFT
    # 0.85 / 1.61x the simulator's (the storm read as a burstiness ca^2 of the whole run)
    ("azure_code_2023", 20.8, "Llama-3.1-8B", "H100", 1, (0.85, 1.61), (0.7, 0.75)),
    # Mooncake conversation on Llama-3.1-70B H100 TP 4 at 1.11 req/s (0.95x the analytical 1.17). Before: 1.13 /
    # 2.82x. The simulator sustains ~1.0 req/s on these lengths, the mixture's capacity 1.05: the run is ~10 %
    # past capacity, the fluid sees ~6 %, so it builds about half the backlog (0.60 / 0.73x since the slot wait
    # is each window's; the whole run's slot wait, at the run's occupancy, had made up for it: 1.77 / 1.20x)
    ("mooncake_conversation", 1.11, "Llama-3.1-70B", "H100", 4, (1.13, 2.82), (0.5, 0.6)),
])
def test_a_trace_storm_is_a_fluid_backlog_over_its_windows(trace, rate, model, gpu, tp, before, lo):
    """A trace's own arrivals as a modulated arrival process (`ServingModel._modulated`): the rate of each of
    20 windows drives a fluid backlog where it exceeds the capacity, carried into the windows after it, and a
    stationary queue at the window's own rate (its arrivals' dispersion within the window) elsewhere."""
    w = serving.Workload(trace=traces.load_sample(trace).to_rate(rate))
    d = Deployments.of(**FORMER, gpu=gpu, tp=tp, weight_dtype="fp8", kv_dtype="fp8", prefix_caching=False)
    ana = ServingModel(model, w).evaluate(d).iloc[0]
    sim = serving.simulate(model, gpu, tp=tp, weight_dtype="fp8", kv_dtype="fp8", workload=w,
                           scheduler=serving.Scheduler(prefix_caching=False))
    r = {a: float(ana[a]) / float(sim[s]) for a, s in PAIRS[:2]}
    assert lo[1] < r["ttft_ms_p99"] < 1.3, (r, before)
    assert lo[0] < r["ttft_ms"] < 1.8, (r, before)


def test_arrival_profile_and_dispersion_within_windows():
    """`Workload.arrival_profile`: each window's count over the mean; `arrival_dispersion(demodulate=)`: Poisson
    arrivals whose rate jumps from 1 to 5 req/s halfway read an index far above 1 over windows of tens of
    seconds (the jump), but ~1 within the windows once the rate's swings are taken out."""
    rng = np.random.default_rng(3)
    slow = np.cumsum(rng.exponential(1.0, 1000))
    fast = slow[-1] + np.cumsum(rng.exponential(0.2, 5000))
    a = np.concatenate([slow, fast])
    lens = np.full(len(a), 100)
    w = serving.Workload(trace=serving.Trace(a - a[0], lens, lens), n_requests=len(a))
    prof = w.arrival_profile(2)
    assert prof is not None and prof.mean() == pytest.approx(1.0)
    assert prof[0] == pytest.approx(1000 / 3000, rel=0.05) and prof[1] == pytest.approx(5000 / 3000, rel=0.05)
    windows = np.array([0.5, 5.0, 50.0])
    raw = w.arrival_dispersion(windows)
    flat = w.arrival_dispersion(windows, demodulate=20)
    assert raw is not None and flat is not None
    assert raw[-1] > 20.0, raw
    assert np.all(np.abs(flat[:2] - 1.0) < 0.3) and flat[-1] < 2.0, (raw, flat)
    assert serving.Workload(rate=2.0).arrival_profile(20) is None
    with pytest.raises(ValueError, match="windows"):
        w.arrival_profile(0)


@pytest.mark.parametrize("dp", [2, 4])
def test_a_storm_split_over_replicas_is_a_shorter_run_each(dp):
    """Azure 2023 code at dp x 8 its own rate on dp Llama-3.1-8B H100 replicas: each replica sees 1 / dp of the
    run's requests over the run's span, so its storm's backlog is 1 / dp as long (simulated mean TTFT 3.7 / 1.9 /
    1.0 s on 1 / 2 / 4 replicas). Before: p99 TTFT 2.7x (dp 2) and 5.5x (dp 4) the simulator's (every replica
    priced with the whole run)."""
    w = serving.Workload(trace=traces.load_sample("azure_code_2023").scale_rate(8.0 * dp))
    d = Deployments.of(**FORMER, gpu="H100", tp=1, dp=dp, weight_dtype="fp8", kv_dtype="fp8", prefix_caching=False)
    ana = ServingModel(MODEL, w).evaluate(d).iloc[0]
    sim = serving.simulate(MODEL, "H100", tp=1, dp=dp, weight_dtype="fp8", kv_dtype="fp8", workload=w,
                           scheduler=serving.Scheduler(prefix_caching=False))
    assert 0.7 < ana["ttft_ms_p99"] / sim["ttft_ms_p99"] < 1.3, (ana["ttft_ms_p99"], sim["ttft_ms_p99"])
    assert 0.7 < ana["ttft_ms"] / sim["ttft_ms_mean"] < 1.5, (ana["ttft_ms"], sim["ttft_ms_mean"])


@pytest.mark.parametrize("load,before", [(0.95, (3.79, 1.77)), (1.1, (2.25, 1.39))])
def test_a_storm_first_fills_the_free_slots(load, before):
    """Azure 2023 conversation (1,000 requests; its rate ramps from 0.3x to 1.4x the mean, ~250 output tokens) on
    Llama-3.1-8B H100 fp8 at 0.95 and 1.1x the saturated rate (30.4 req/s). The replica is slot-bound there (256
    sequences, each held ~8 s): a window over the capacity first fills the slots its quieter past left free,
    admitting at the prompts' rate until the batch is full, and a slot frees only when its sequence has
    decoded (`ServingModel._slot_fluid`). Before: mean / p99 TTFT ``before`` x the simulator's (every window over
    the full batch's capacity queued, and the slot wait the whole run's, at its mean occupancy near the full
    batch)."""
    w = serving.Workload(trace=traces.load_sample("azure_conv_2023").to_rate(load * 30.36))
    d = Deployments.of(**FORMER, gpu="H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", prefix_caching=False)
    ana = ServingModel(MODEL, w).evaluate(d).iloc[0]
    sim = serving.simulate(MODEL, "H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", workload=w,
                           scheduler=serving.Scheduler(prefix_caching=False, max_batch_size=256,
                                                     max_num_tokens=8192))
    r = {a: float(ana[a]) / float(sim[s]) for a, s in PAIRS[:2]}
    # at 0.95x saturation the mean wait moves ~1 / (1 - rho): a 1 % shift of the step costs (a refit) moves it ~20 %
    assert 0.7 < r["ttft_ms"] < 1.8, (r, before)
    # (the thirty-eighth round's backlog at the sequences the decodes hold: mean / p99 1.43 / 0.99x -> 0.79 / 0.65x
    # at 0.95x, 1.10 / 0.95x -> 0.80 / 0.80x at 1.1x: the decodes' fluid fills the 256 slots a window or two later
    # than the simulated run, whose backlog then grows ~1.5x faster; docs/profiles.md)
    assert 0.6 < r["ttft_ms_p99"] < 1.3, (r, before)


def test_slot_fluid_fills_free_slots_then_queues_at_capacity():
    """`ServingModel._slot_fluid` on its own: a replica of 200 slots serving 0.02 requests per ms with the batch
    full (residency 10 s on average), prompts admitted at up to 0.05 per ms with no decode in flight (falling to
    0.02 with a full batch), outputs spread evenly over 0.5-1.5x their mean. A window at 1.5x the capacity whose
    extra requests fit in the free slots (100-120 of 200 held: prompts at 0.032-0.035 per ms) queues nothing; at
    a constant 1.2x the capacity the batch fills and the wait then grows by (1.2 - 1) x the window's length per
    window (the reflected fluid over ``cap``)."""
    cap, mu, slots = np.array([0.02]), np.array([0.05]), np.array([200.0])
    outs, v = np.linspace(50.0, 150.0, 11), np.full(11, 1.0 / 11)
    storm = np.full((1, 20), 0.5 * cap[0])
    storm[0, 5] = 1.5 * cap[0]                                       # 20 extra requests over 2 s: slots free
    fluid, held, _ = ServingModel._slot_fluid(storm, np.array([2000.0]), mu, cap, slots, outs, v)
    assert fluid.max() < 1e-9, fluid
    assert held.max() < slots[0], held
    over = np.full((1, 20), 1.2 * cap[0])
    fluid, held, _ = ServingModel._slot_fluid(over, np.array([5000.0]), mu, cap, slots, outs, v)
    assert held[0, -1] == pytest.approx(slots[0], rel=1e-6)
    assert np.diff(fluid[0, -5:]) == pytest.approx(np.full(4, 0.2 * 5000.0), rel=0.1)


def _disagg_ratios(trace: str, load: float, n_prefill: int) -> dict[str, float]:
    """Analytical / simulated TTFT (mean, p99) of Llama-3.1-8B fp8 on H100s, ``n_prefill`` prefill workers and one
    decode worker, the trace's own arrivals at ``load`` x the model's capacity of the deployment."""
    from objectives.serving.scheduler import Pool
    tr = traces.load_sample(trace)
    d = Deployments.of(**FORMER, gpu="H100", tp=1, dp=n_prefill + 1, mode="disagg", prefill_replicas=n_prefill,
                       weight_dtype="fp8", kv_dtype="fp8", prefix_caching=False)
    cap = float(ServingModel(MODEL, serving.Workload(trace=tr)).evaluate(d, rate=1e9)["requests_per_s"].iloc[0])
    w = serving.Workload(trace=tr.to_rate(load * cap))
    ana = ServingModel(MODEL, w).evaluate(d).iloc[0]
    sch = serving.Scheduler(prefix_caching=False, max_batch_size=256, max_num_tokens=8192)   # Deployments.of's
    sim = serving.simulate(MODEL, "H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", workload=w, mode="disagg",
                           prefill=Pool(n_workers=n_prefill, scheduler=sch), decode=Pool(n_workers=1, scheduler=sch),
                           scheduler=sch)
    return {a: float(ana[a]) / float(sim[s]) for a, s in PAIRS[:2]}


@pytest.mark.parametrize("load", [0.5, 0.95])
def test_disaggregated_prefill_pool_queues_over_the_trace_windows(load):
    """Azure 2023 code (its sample: a pause of half the span, then storms) with its own arrivals on a 1P1D
    deployment: the prefill pool's prompts queue through the storms the windows see (`_modulated`), as the
    aggregated replicas' do. Before (one stationary queue over the whole run): mean TTFT 0.46x the simulator's at
    0.5x capacity, p99 1.50x at 0.95x."""
    r = _disagg_ratios("azure_code_2023", load, 1)
    assert 0.8 < r["ttft_ms"] < 1.35, r
    assert 0.7 < r["ttft_ms_p99"] < 1.3, r


def test_disaggregated_decode_slots_fill_over_the_trace_windows():
    """Azure 2023 conversation on 2P1D at 0.95x capacity (the decode worker binds): a storm fills the decode slots
    its quieter past left free, then queues for them (`_slot_fluid` on the decode rank). Before (the whole run's
    Erlang C wait at the decode pool's mean occupancy): mean / p99 TTFT 0.60 / 0.31x the simulator's."""
    r = _disagg_ratios("azure_conv_2023", 0.95, 2)
    assert 0.8 < r["ttft_ms"] < 1.35, r
    assert 0.75 < r["ttft_ms_p99"] < 1.35, r


@pytest.mark.parametrize("trace,rate,chunked,before", [
    ("azure_conv_2023", 24.4, True, "p99 0.52x, mean 0.87x"),
    ("azure_code_2023", 13.0, True, "p99 0.59x, mean 0.10x"),
    ("azure_code_2023", 14.1, False, "p99 0.63x, mean 0.11x"),
])
def test_a_storm_slows_the_decodes_it_runs_beside(trace, rate, chunked, before):
    """Llama-3.1-8B H100 fp8 at about half (Azure code) and 0.8x (Azure conversation) its capacity with the traces'
    own arrivals: where a window's prompts come fast, most iterations carry prompts and a decode step lasts
    t_dec / (1 - rho), at most the longest iteration; a request's TPOT is its decode beside the prompts that
    arrive during it (`_trace_tpot`, which replaced the windows' mean step, `_window_tpot`). Azure code's storms (requests sharing timestamps) hold every
    iteration at the full budget for the few decode steps of its short outputs. Before: TPOT from the run's mean
    rate, ``before`` the simulator's."""
    r = _ratios(trace, rate, chunked)
    assert 0.75 < r["tpot_ms_p99"] < 1.35, r
    assert 0.7 < r["tpot_ms"] < 1.45, r


def test_prompt_profile_reads_each_windows_prompts():
    """`Workload.prompt_profile`: Azure 2023 conversation's sample brings longer prompts late in its span (its
    storms) than early; the windows' means weighted by their requests average to the run's mean; None without
    a trace's own arrivals."""
    w = serving.Workload(trace=traces.load_sample("azure_conv_2023"))
    tok, prof = w.prompt_profile(20), w.arrival_profile(20)
    assert tok is not None and prof is not None
    assert float(tok[14:].mean()) > 1.05 > 0.85 > float(tok[:4].mean())
    assert abs(float((tok * prof).mean()) - 1.0) < 1e-9
    assert serving.Workload(rate=1.0, input_len=100, output_len=10).prompt_profile(20) is None


def test_a_window_of_longer_prompts_queues_longer():
    """Llama-3.1-70B fp8, one H100 TP 4 prefill and one decode worker, Azure 2023 conversation at 0.8x capacity:
    its late storms also bring prompts 1.1-1.4x the run's mean, so the prefill pool serves fewer of them per
    window (`Workload.prompt_profile` in `_modulated`). Before (every window the run's length mix): p99 TTFT 0.34x
    the simulator's."""
    from objectives.serving.scheduler import Pool
    tr = traces.load_sample("azure_conv_2023")
    d = Deployments.of(**FORMER, gpu="H100", tp=4, dp=2, mode="disagg", prefill_replicas=1, weight_dtype="fp8", kv_dtype="fp8",
                       prefix_caching=False)
    cap = float(ServingModel("Llama-3.1-70B", serving.Workload(trace=tr)).evaluate(d, rate=1e9)["requests_per_s"].iloc[0])
    w = serving.Workload(trace=tr.to_rate(0.8 * cap))
    ana = ServingModel("Llama-3.1-70B", w).evaluate(d).iloc[0]
    sch = serving.Scheduler(prefix_caching=False)
    sim = serving.simulate("Llama-3.1-70B", "H100", tp=4, weight_dtype="fp8", kv_dtype="fp8", workload=w,
                           mode="disagg", prefill=Pool(n_workers=1, scheduler=sch),
                           decode=Pool(n_workers=1, scheduler=sch), scheduler=sch)
    assert 0.6 < float(ana["ttft_ms_p99"]) / float(sim["ttft_ms_p99"]) < 1.35
