"""`inference.served_breakdown` (max_throughput's steady state by component), `StepModel.breakdown` (one simulator
iteration) and `dse breakdown --served`."""
from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from objectives import inference
from objectives.inference import core
from objectives.inference.admission import churn, queue_blend
from objectives.inference.breakdown import (
    COMPONENTS,
    SERVED_COMPONENTS,
    SERVED_PHASES,
    SPEC_TERMS,
    served_breakdown,
    served_html,
)
from objectives.inference.cli import main as cli_main
from objectives.inference.estimate import (
    chunk_pass_s,
    pipeline_budget,
    recompute_s,
    replica_time_s,
    split_work,
    steady_state,
    steady_work,
)
from tests.helpers.profiles import slow_table
from tests.objectives.inference.test_breakdown import MODELS

LAYOUTS = (("H200", dict(tp=[[1], [8]])), ("B200", dict(tp=2)), ("H200", dict(tp=4, pp=2)),
           ("H200", dict(tp=2, attn_dp=4, ep=8)), ("H200", dict(tp=8, concurrency=[64, 5000])),
           # fewer clients than attention-DP ranks: only the busy ranks' tokens reach the experts
           ("H200", dict(tp=1, attn_dp=8, ep=8, concurrency=[1, 3, 5, 64])))


def _phase(bd: pd.DataFrame, phase: str) -> pd.DataFrame:
    return bd[bd["phase"] == phase].reset_index(drop=True)


@pytest.mark.parametrize("engine", [None, "roofline"])
@pytest.mark.parametrize("model", MODELS)
def test_the_components_sum_to_max_throughputs_ttft_and_tpot_on_both_paths(model, engine):
    for gpu, kw in LAYOUTS:
        a = dict(input_len=[[1000], [8000]], output_len=300, engine=engine, **kw)
        mt = inference.max_throughput(model, gpu, **a)
        bd = served_breakdown(model, gpu, **a)
        assert len(bd) == 4 * len(mt) and list(bd["phase"][:4]) == list(SERVED_PHASES)
        parts = bd[list(SERVED_COMPONENTS)].to_numpy()
        assert np.all(parts >= 0.0), (gpu, kw)
        np.testing.assert_allclose(parts.sum(axis=1), bd["total_ms"], rtol=1e-12, atol=0)
        for phase, col in (("ttft", "ttft_ms"), ("tpot", "tpot_ms")):
            np.testing.assert_allclose(_phase(bd, phase)["total_ms"], mt[col], rtol=1e-9, atol=0, err_msg=(gpu, kw))
        for col in ("model", "gpu", "tp", "pp", "ep", "attn_dp", "engine", "source", "batch_size", "input_len"):
            assert list(bd[col][::4]) == list(mt[col]), col
        # only the TTFT has its own terms; the iterations hold the kernels' and the host's
        others = bd[bd["phase"] != "ttft"]
        assert (others[["startup_wave", "front_end", "queue"]] == 0).all().all()
        if "concurrency" not in kw:
            assert (bd["queue"] == 0).all()


@pytest.mark.parametrize("model, kw, engine", [
    ("Llama-3.1-70B", dict(tp=4), None), ("Qwen3-30B-A3B", dict(tp=2), None), ("Qwen3-30B-A3B", dict(tp=2), "roofline"),
    ("Llama-3.1-70B", dict(tp=4, pp=2), None), ("Llama-3.1-70B", dict(tp=4, pp=2), "roofline"),
    ("DeepSeek-V3", dict(tp=8), None), ("DeepSeek-V3", dict(tp=8), "roofline")])
def test_each_iteration_is_the_one_the_steady_state_prices(model, kw, engine):
    """The prefill iteration and the pure decode step are `steady_state`'s own: their times (the chunk's pass
    through every stage where pp > 1), their counts per request cycle, and together its mean iteration (every row
    that splits: measured profiles, MoE models, pipelines; a dense model's closed form on one stage is the next
    test's)."""
    isl, osl, mnt = 3000.0, 400.0, 8192.0
    bd = served_breakdown(model, "H200", input_len=isl, output_len=osl, engine=engine, **kw)
    pre, dec = (_phase(bd, ph).iloc[0] for ph in ("prefill_iteration", "decode_step"))
    N = float(pre["batch_size"])
    p = core.prepare(model, "H200", kw["tp"], kw.get("pp", 1), engine=engine)
    mnt = float(pipeline_budget(p, mnt))     # pp > 1: pp batches in flight, each with its own budget
    assert mnt == 8192.0 * kw.get("pp", 1)
    n_it = steady_work(N, isl, osl, mnt)[0]
    w_pf, w_dec, n_pf, n_dec = split_work(N, isl, osl, mnt, n_it)
    ch = w_pf[0] / max(w_pf[0] / isl, 1.0)
    t_p = chunk_pass_s(p, replica_time_s(p, *w_pf, N), ch, ch * (isl + 1) / 2, w_pf[2], w_pf[2] * (isl + osl / 2), N)
    t_d = replica_time_s(p, *w_dec, N)
    assert pre["total_ms"] == pytest.approx(1e3 * float(t_p), rel=1e-9)
    assert dec["total_ms"] == pytest.approx(1e3 * float(t_d), rel=1e-9)
    assert (pre["iterations"], dec["iterations"]) == pytest.approx((float(n_pf), float(n_dec)), rel=1e-12)
    assert (pre["prompt_tokens"], pre["decode_seqs"], dec["prompt_tokens"]) == pytest.approx(
        (float(w_pf[0]), float(w_pf[2]), 0.0))
    t_mean = float(steady_state(p, N, isl, osl, mnt)[0])
    assert (n_pf * pre["total_ms"] + n_dec * dec["total_ms"]) / n_it == pytest.approx(1e3 * t_mean, rel=1e-9)
    assert pre["total_ms"] > dec["total_ms"] > 0
    assert pre["attention_prefill"] > 0 and dec["attention_prefill"] == 0 and dec["attention_decode"] > 0


def test_a_dense_roofline_row_shows_its_one_mean_iteration():
    """The closed form of a dense model on one stage prices one mean iteration (each carries a share of the
    prompts): it is the prefill row, with every iteration of the cycle; there are no pure decode steps."""
    bd = served_breakdown("Llama-3.1-8B", "H200", input_len=1024, output_len=128, engine="roofline")
    pre, dec, tpot = (_phase(bd, ph).iloc[0] for ph in ("prefill_iteration", "decode_step", "tpot"))
    N = float(pre["batch_size"])
    n_it, T, A, D, K, S = steady_work(N, 1024.0, 128.0, 8192.0)
    p = core.prepare("Llama-3.1-8B", "H200", engine="roofline")
    assert pre["iterations"] == pytest.approx(n_it) and dec["iterations"] == 0
    assert pre["total_ms"] == pytest.approx(1e3 * float(replica_time_s(p, T, A, D, K, S, N)), rel=1e-9)
    assert dec[list(SERVED_COMPONENTS)].sum() == 0
    assert tpot["total_ms"] == pytest.approx(pre["total_ms"] * n_it / 128.0, rel=1e-12)


def test_the_front_end_and_the_queue_are_the_ttfts_own_terms():
    eff = core.default_eff()
    table = dict(eff.params["engine_ttft_ms"])
    slow = inference.efficiency.from_params({**eff.params, "engine_ttft_ms": {**table, "vllm": 40.0}})
    args = dict(model="Llama-3.1-8B", gpu="H200", input_len=2000, output_len=200, engine=["vllm", "roofline"])
    a, b = served_breakdown(**args), served_breakdown(**args, efficiency=slow)
    fa, fb = _phase(a, "ttft")["front_end"], _phase(b, "ttft")["front_end"]
    # the engine's host time (Llama has no model term of its own), none on the roofline
    assert fb[0] == pytest.approx(40.0) and fa[0] != pytest.approx(40.0) and fb[1] == fa[1] == 0.0
    kernels = [c for c in SERVED_COMPONENTS if c != "front_end"]
    # the GPU's iterations are the same; the longer host time lets more of a closed-loop round's prompts reach the
    # scheduler together (`lockstep.round_queue`'s lag, the thirty-seventh round): on the vLLM row the TTFT's
    # kernels hold more of the same cycle, the window less (re-pinned from every row equal); the roofline row,
    # priced without rounds, stays
    for ph in ("prefill_iteration", "decode_step"):
        np.testing.assert_allclose(_phase(b, ph)[kernels].to_numpy(), _phase(a, ph)[kernels].to_numpy(),
                                   rtol=1e-12, atol=0)
    ka, kb = (_phase(x, "ttft")[kernels].sum(axis=1).to_numpy() for x in (a, b))
    assert kb[0] > ka[0] and kb[1] == pytest.approx(ka[1], rel=1e-12)
    # without clients the window stays the cycle less the own prompt's iterations
    np.testing.assert_allclose(_phase(b, "tpot")[kernels].to_numpy(), _phase(a, "tpot")[kernels].to_numpy(),
                               rtol=1e-12, atol=0)
    # more closed-loop clients than slots: they queue for one, and the queued prompt is admitted as a slot frees,
    # into the iteration that starts there, alone or nearly (`estimate.released_prompt_work`): the GPU's part
    # shrinks from the round's queued prompts to that prompt's own iteration; the host time is the same
    q = served_breakdown("Llama-3.1-8B", "H200", input_len=2000, output_len=200, max_batch_size=64,
                         concurrency=[64, 256])
    t0, t1 = _phase(q, "ttft").iloc[0], _phase(q, "ttft").iloc[1]
    assert t0["queue"] == 0 and t1["queue"] > 2 * (t1["total_ms"] - t1["queue"])
    assert t1["front_end"] == pytest.approx(t0["front_end"], rel=1e-12)
    assert 0 < t1["total_ms"] - t1["queue"] < 0.9 * (t0["total_ms"] - t0["queue"])
    mt = inference.max_throughput("Llama-3.1-8B", "H200", input_len=2000, output_len=200, max_batch_size=64,
                                  concurrency=[64, 256])
    np.testing.assert_allclose(_phase(q, "ttft")["total_ms"], mt["ttft_ms"], rtol=1e-9)


@pytest.mark.parametrize("gpu", ["H100-SXM-80GB", "H100-PCIe-80GB"])   # SGLang's measured profile, the roofline
def test_sglangs_retraction_churn_has_components_of_its_own(gpu):
    """Where SGLang's cache bounds the batch below the clients, `max_throughput` adds its retraction churn
    (`estimate.retraction_churn`): the breakdown shows it as `recompute` (the prefills again, their share of the
    cycle) and `requeue` (the later stints in the queue and the prompt wait again, one more TTFT per retraction,
    spread over the output tokens); the phases still sum to `max_throughput`'s ttft_ms / tpot_ms on the KV-bound rows
    and on the others (1k / 8k at 64 clients: TTFT 225 s / TPOT 47.6 ms against the pre-churn 477 s / 17.4 ms; the
    thirty-first round's refit moved them from 230 s / 48.6 / 17.8 ms)."""
    isl, mnt = 1024.0, 8192.0
    a = dict(engine="sglang", input_len=int(isl), output_len=[[1024], [8192]], concurrency=[4, 16, 64, 256])
    mt = inference.max_throughput("Qwen3-30B-A3B", gpu, **a)
    bd = served_breakdown("Qwen3-30B-A3B", gpu, **a)
    ttft, tpot = _phase(bd, "ttft"), _phase(bd, "tpot")
    np.testing.assert_allclose(ttft["total_ms"], mt["ttft_ms"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(tpot["total_ms"], mt["tpot_ms"], rtol=1e-9, atol=0)
    parts = bd[list(SERVED_COMPONENTS)].to_numpy()
    assert np.all(parts >= 0.0)
    np.testing.assert_allclose(parts.sum(axis=1), bd["total_ms"], rtol=1e-12, atol=0)
    # the churn only where the cache binds (fewer in flight than clients) or, all clients in flight, where their
    # waves' peak overflows the pool (`admission.wave_retraction`: on the roofline 16 clients of 1k / 8k), only in
    # the TTFT and TPOT
    conc = np.tile([4.0, 16.0, 64.0, 256.0], 2)
    osl = np.repeat([1024.0, 8192.0], 4)
    N = mt["batch_size"].to_numpy(float)
    churned = (tpot["recompute"] > 0).to_numpy()
    binds = N < conc
    wave = churned & ~binds
    assert churned[binds].all() and churned.any() and not churned.all()
    assert (osl[wave] == 8192).all() and (N[wave] == conc[wave]).all() and wave.any() == (gpu == "H100-PCIe-80GB")
    assert (tpot.loc[churned, "requeue"] > 0).all() and (tpot.loc[~churned, ["recompute", "requeue"]] == 0).all().all()
    others = bd[bd["phase"].isin(["prefill_iteration", "decode_step"])]
    assert (others[["recompute", "requeue"]] == 0).all().all() and (ttft["requeue"] == 0).all()
    # recompute: N x rho prefills again of the prompt and a third of the output per cycle, inside the decode window
    # of osl - 1 tokens that TPOT times (`estimate.per_window_token`; it read / osl before the window), where the
    # queue has dissolved the waves (`admission.queue_blend` 1; just past the pool the waves' retractions mix in)
    p = core.prepare("Qwen3-30B-A3B", gpu, engine="sglang")
    rho, redo = churn(isl, osl, binds)
    full = binds & (queue_blend(N, conc) >= 1.0)
    assert full.sum() >= 3
    redo_s = N * rho * np.array([float(recompute_s(p, n, isl, o, mnt, r)) for n, o, r in zip(N, osl, redo)])
    np.testing.assert_allclose(tpot["recompute"][full], (1e3 * redo_s / (osl - 1.0))[full], rtol=1e-9)
    # requeue: each retraction waits a stint as long as the first and prefills again (one more TTFT, less its front
    # end: a retracted request goes back to the scheduler's queue, not through the API server, whose host time holds
    # no slot either: `estimate.host_ttft_s`)
    np.testing.assert_allclose((tpot["requeue"] * (osl - 1.0))[full],
                               (rho * (ttft["total_ms"] - ttft["front_end"]))[full], rtol=1e-9)
    # the row: one H100 (measured profile), 64 clients of 1k / 8k, N = 15
    if gpu == "H100-SXM-80GB":
        i = 6
        assert N[i] == 15 and mt["ttft_ms"][i] == pytest.approx(225e3, rel=0.05)   # within a refit's reach
        assert mt["tpot_ms"][i] == pytest.approx(47.6, rel=0.05)
        kernels = tpot.loc[i, list(COMPONENTS)].sum()
        assert kernels == pytest.approx(17.4, rel=0.05) and tpot.loc[i, "requeue"] > kernels
        # 64 clients on 15 slots: a queued prompt is admitted as a slot frees (`estimate.released_prompt_work`),
        # so it waits for no mean iteration (which the prefills again lengthen) and its own holds no recompute
        assert ttft.loc[i, "recompute"] == 0
    else:
        assert (ttft["recompute"] == 0).all()       # the closed form's group of prompts: no mean iteration in it
    # the report's table shows the churn's rows (each component has its colour)
    html = served_html([("churn", bd[bd["row"] == 6])])
    assert "requeue" in html and "recompute" in html and f"{tpot['total_ms'][6]:.4g}" in html


def test_the_churn_follows_the_caches_size():
    """`kv_capacity_tokens` and `gpu_memory_utilization` size the cache, and so where it binds: the breakdown's
    churn follows them as `max_throughput`'s does."""
    a = dict(engine="sglang", input_len=1024, output_len=1024, concurrency=64)
    free = served_breakdown("Llama-3.1-8B", "H100", **a)
    assert (free["recompute"] == 0).all()
    for kw in (dict(kv_capacity_tokens=40_000), dict(gpu_memory_utilization=0.3)):
        mt = inference.max_throughput("Llama-3.1-8B", "H100", **a, **kw)
        bd = served_breakdown("Llama-3.1-8B", "H100", **a, **kw)
        assert float(mt["batch_size"].iloc[0]) < 64 and float(_phase(bd, "tpot")["recompute"].iloc[0]) > 0, kw
        for phase, col in (("ttft", "ttft_ms"), ("tpot", "tpot_ms")):
            np.testing.assert_allclose(_phase(bd, phase)["total_ms"], mt[col], rtol=1e-9, atol=0, err_msg=str(kw))


@pytest.mark.parametrize("cached", [True, False, [True, False]])
def test_the_parts_add_up_with_the_prefix_cache_on_and_off(cached):
    """vLLM's preemption churn where the cache binds: off, a preempted request prefills its prompt and output so far
    again (`admission.preemption_churn`), on, its cache kept some; the breakdown prices the churn with the same
    knob as `max_throughput` (one value or one per row), so its phases still add up to max_throughput's."""
    a = dict(engine="vllm", input_len=1024, output_len=1024, concurrency=64, kv_capacity_tokens=40_000)
    mt = inference.max_throughput("Llama-3.1-8B", "H100", **a, prefix_caching=cached)
    bd = served_breakdown("Llama-3.1-8B", "H100", **a, prefix_caching=cached)
    for phase, col in (("ttft", "ttft_ms"), ("tpot", "tpot_ms")):
        np.testing.assert_allclose(_phase(bd, phase)["total_ms"], mt[col], rtol=1e-9, atol=0)
    redo = _phase(bd, "tpot")["recompute"].to_numpy()
    on = _phase(served_breakdown("Llama-3.1-8B", "H100", **a), "tpot")["recompute"].iloc[0]
    flags = np.atleast_1d(cached)
    assert on > 0 and list(redo > 1.5 * on) == [not f for f in flags]


def test_the_balance_one_per_row_splits_each_row_as_the_scalar_knob_does():
    """A per-row ``adp_balance`` (priced in one pass) gives each row's components exactly as the scalar knob
    does, the busy-rank preparations (few clients) included."""
    a = dict(model="Qwen3-30B-A3B", gpu="B200", tp=1, attn_dp=8, ep=8, engine="trtllm", input_len=[1024, 4096],
             output_len=512, concurrency=[[4], [256]])
    flags = np.array([[True, False], [False, True]])
    mixed = served_breakdown(**a, adp_balance=flags)
    on, off = (served_breakdown(**a, adp_balance=b) for b in (True, False))
    rows = np.repeat(flags.ravel(), len(SERVED_PHASES))
    for col in (*SERVED_COMPONENTS, "total_ms"):
        np.testing.assert_array_equal(mixed[col].to_numpy(), np.where(rows, on[col], off[col]))
    assert (on["balance_hold"] > 0).any() and not (off["balance_hold"] > 0).any()


@pytest.mark.parametrize("balance", [None, True, [True, False]])
def test_the_parts_add_up_with_the_attention_dp_balance_on_and_off(balance):
    """TensorRT-LLM's attention-DP balance lines the ranks' prompts up (less `rank_wait`) and holds each prompt
    back until its release (`balance_hold`, in the TTFT only); the breakdown prices both with the same knob as
    `max_throughput` (one value or one per row), so its phases still add up to max_throughput's."""
    a = dict(model="Qwen3-30B-A3B", gpu="B200", tp=1, attn_dp=8, ep=8, engine="trtllm", input_len=[1024, 4096],
             output_len=512, concurrency=[[16], [256]])
    mt = inference.max_throughput(**a, adp_balance=balance)
    bd = served_breakdown(**a, adp_balance=balance)
    for phase, col in (("ttft", "ttft_ms"), ("tpot", "tpot_ms")):
        np.testing.assert_allclose(_phase(bd, phase)["total_ms"], mt[col], rtol=1e-9, atol=0)
    parts = bd[list(SERVED_COMPONENTS)].to_numpy()
    assert np.all(parts >= 0.0)
    np.testing.assert_allclose(parts.sum(axis=1), bd["total_ms"], rtol=1e-12, atol=0)
    off = served_breakdown(**a)
    on = np.resize(np.asarray(bool(balance) if not isinstance(balance, list) else balance), 4)
    hold = _phase(bd, "ttft")["balance_hold"].to_numpy()
    wait, wait0 = (_phase(x, "prefill_iteration")["rank_wait"].to_numpy() for x in (bd, off))
    assert list(hold > 0) == list(on) and (bd.loc[bd["phase"] != "ttft", "balance_hold"] == 0).all()
    assert np.all(wait[on] < 0.5 * wait0[on]) and np.array_equal(wait[~on], wait0[~on])
    # the report's table shows the lockstep terms (each component has its colour: rank_wait once had none)
    html = served_html([("lockstep", bd[bd["row"] == 0])])
    assert "rank_wait" in html and ("balance_hold" in html) == bool(on[0])


def test_the_lone_rank_is_prepared_once_for_every_busy_rank_count(monkeypatch):
    """`Prepared.solo` (one rank's prompt chunk alone at the experts) is prepared once, as `max_throughput`
    prepares it, not again for each count of busy ranks (fewer clients than attention-DP ranks)."""
    import importlib
    breakdown = importlib.import_module("objectives.inference.breakdown")
    calls = []
    real = breakdown.prepare

    def counting(*args, **kw):
        calls.append(kw.get("moe_dp"))
        return real(*args, **kw)
    monkeypatch.setattr(breakdown, "prepare", counting)
    a = dict(model="Qwen3-30B-A3B", gpu="H200", tp=1, attn_dp=8, ep=8, concurrency=[1, 3, 5, 64])
    bd = served_breakdown(**a)
    # the rows, the lone rank, then the rows at each of the three busy counts (1, 3 and 5 ranks)
    assert calls == [None, 1.0, 1.0, 3.0, 5.0]
    np.testing.assert_allclose(_phase(bd, "ttft")["total_ms"], inference.max_throughput(**a)["ttft_ms"], rtol=1e-9)


def test_a_slower_kernel_table_moves_its_own_component_only(monkeypatch):
    args = dict(model="Llama-3.1-70B", gpu="H200", tp=4, input_len=2048, output_len=257, engine="vllm")
    before = served_breakdown(**args)
    slow_table(monkeypatch, "context_attention.bf16", 2.0)
    after = served_breakdown(**args)
    it = before["phase"].isin(["prefill_iteration", "decode_step", "tpot"]).to_numpy()
    others = [c for c in COMPONENTS if c != "attention_prefill"]
    np.testing.assert_allclose(after.loc[it, others].to_numpy(), before.loc[it, others].to_numpy(), rtol=1e-9)
    grew = after["attention_prefill"] > 1.5 * before["attention_prefill"]
    assert list(grew[it]) == [True, False, True]   # the decode step reads no prompt attention
    np.testing.assert_allclose(_phase(after, "ttft")["total_ms"],
                               inference.max_throughput(**args)["ttft_ms"], rtol=1e-9)


@pytest.mark.parametrize("bad", [dict(input_len=0), dict(output_len=-3), dict(model="No-Such-Model"),
                                 dict(gpu="H999"), dict(engine="nope"), dict(tp=0), dict(max_batch_size=0),
                                 dict(gpu_memory_utilization=1.5), dict(input_len=[1, 2], output_len=[1, 2, 3])])
def test_bad_input_raises_as_max_throughput_does(bad):
    args = {**dict(model="Llama-3.1-8B", gpu="H200"), **bad}
    with pytest.raises(Exception) as want:
        inference.max_throughput(**args)
    with pytest.raises(type(want.value)) as got:
        served_breakdown(**args)
    assert str(got.value) == str(want.value)


def test_no_band_and_no_configuration():
    with pytest.raises(TypeError, match="interval"):
        served_breakdown("Llama-3.1-8B", "H200", interval=0.8)
    empty = served_breakdown("Llama-3.1-8B", "H200", input_len=np.array([], dtype=int))
    assert len(empty) == 0 and {"row", "phase", "iterations", "total_ms", *SERVED_COMPONENTS} <= set(empty.columns)
    assert inference.served_breakdown is served_breakdown


# ---- the simulator's iteration -----------------------------------------------------------------------------

@pytest.mark.parametrize("engine", [None, "roofline"])
@pytest.mark.parametrize("model, tp, pp", [("Llama-3.1-70B", 4, 1), ("Llama-3.1-70B", 4, 2), ("Qwen3-30B-A3B", 2, 1),
                                           ("Qwen3.5-35B-A3B", 2, 2), ("DeepSeek-V3", 8, 1)])
def test_step_model_breakdown_sums_to_time_ms(model, tp, pp, engine):
    sm = inference.StepModel(model, "H200", tp=tp, pp=pp, engine=engine)
    works = [(2048, 2048 * 2049 / 2, 30, 30 * 3000), (0, 0, 64, 64 * 2000), (8000, 8000 * 4001, 5, 5000, 3),
             (512, 512 * 513 / 2, 0, 0), (1, 1, 1, 100)]
    for w in works:
        parts = sm.breakdown(*w)
        # the kernels' components, then the draft layer's columns (`SPEC_TERMS`), 0 without speculative decoding
        assert list(parts) == list(COMPONENTS + SPEC_TERMS) and all(v >= 0 for v in parts.values())
        assert parts["draft"] == parts["draft_prefill"] == 0.0
        assert sum(parts.values()) == pytest.approx(sm.time_ms(*w), rel=1e-9), w
    pure = sm.breakdown(0, 0, 64, 64 * 2000)
    assert pure["attention_prefill"] == 0 and pure["attention_decode"] > 0
    with pytest.raises(TypeError, match="scalars"):
        sm.breakdown([1, 2], 0, 0, 0)


# ---- dse breakdown --served ----------------------------------------------------------------------------------

def test_dse_breakdown_served_prints_the_steady_state(capsys):
    args = ["Llama-3.1-70B", "--gpu", "H200", "--tp", "4", "--served", "--input-len", "2048", "--output-len", "256"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out.splitlines()
    bd = served_breakdown("Llama-3.1-70B", "H200", tp=4, input_len=2048, output_len=256)
    pre = _phase(bd, "prefill_iteration").iloc[0]
    assert f"{pre['batch_size']:g} sequences in flight" in out[1] and "decode steps" in out[1]
    lines = {ln.split()[0]: ln.replace(",", "").split() for ln in out[3:]}
    assert "gemm" in lines and "startup_wave" in lines and "moe" not in lines and "queue" not in lines
    for i, phase in enumerate(SERVED_PHASES):
        row = _phase(bd, phase).iloc[0]
        assert float(lines["gemm"][1 + 2 * i]) == pytest.approx(row["gemm"], rel=1e-3, abs=1e-3)
        assert float(lines["total"][1 + 2 * i]) == pytest.approx(row["total_ms"], rel=1e-3)
    # SGLang's retraction churn where its cache binds (64 clients, 15 in flight): rows of its own
    assert cli_main(["Qwen3-30B-A3B", "--gpu", "H100", "--engine", "sglang", "--served", "--input-len", "1024",
                     "--output-len", "8192", "--concurrency", "64"]) == 0
    lines = {ln.split()[0]: ln.replace(",", "").split() for ln in capsys.readouterr().out.splitlines()[3:]}
    mt = inference.max_throughput("Qwen3-30B-A3B", "H100", engine="sglang", input_len=1024, output_len=8192,
                                  concurrency=64)
    assert float(lines["recompute"][7]) > 0 and float(lines["requeue"][7]) > 0 and float(lines["requeue"][5]) == 0
    assert float(lines["total"][5]) == pytest.approx(mt["ttft_ms"][0], rel=1e-3)
    assert float(lines["total"][7]) == pytest.approx(mt["tpot_ms"][0], rel=1e-3)
    assert cli_main(["Llama-3.1-8B", "--gpu", "H200", "--served", "--batch-size", "8"]) == 2
    assert "--max-batch-size" in capsys.readouterr().err
    assert cli_main(["Llama-3.1-8B", "--gpu", "H200", "--concurrency", "8"]) == 2
    assert "--served" in capsys.readouterr().err


def test_dse_breakdown_served_knobs_reach_max_throughput(capsys):
    """--no-prefix-caching and --adp-balance price what max_throughput prices with them; --adp-balance is refused
    where it would change nothing (an engine without the balance, one attention-DP rank) and without --served."""
    base = ["Qwen3-30B-A3B", "--gpu", "H200", "--served", "--input-len", "2048", "--output-len", "256"]
    adp = ["--attn-dp", "8", "--ep", "8", "--engine", "trtllm", "--concurrency", "64"]
    for flags, kw in ((["--adp-balance"], dict(adp_balance=True)),
                      (["--no-prefix-caching"], dict(prefix_caching=False))):
        assert cli_main(base + adp + flags) == 0
        lines = {ln.split()[0]: ln.replace(",", "").split() for ln in capsys.readouterr().out.splitlines()[3:]}
        mt = inference.max_throughput("Qwen3-30B-A3B", "H200", attn_dp=8, ep=8, engine="trtllm", input_len=2048,
                                      output_len=256, concurrency=64, **kw)
        assert float(lines["total"][5]) == pytest.approx(mt["ttft_ms"][0], rel=1e-3)
        assert float(lines["total"][7]) == pytest.approx(mt["tpot_ms"][0], rel=1e-3)
    off = inference.max_throughput("Qwen3-30B-A3B", "H200", attn_dp=8, ep=8, engine="trtllm", input_len=2048,
                                   output_len=256, concurrency=64)
    on = inference.max_throughput("Qwen3-30B-A3B", "H200", attn_dp=8, ep=8, engine="trtllm", input_len=2048,
                                  output_len=256, concurrency=64, adp_balance=True)
    assert on["ttft_ms"][0] != pytest.approx(off["ttft_ms"][0], rel=1e-3)   # the flag reached the model
    assert cli_main(base + ["--adp-balance"]) == 2
    assert "no attention-DP balance" in capsys.readouterr().err
    assert cli_main(base + ["--engine", "trtllm", "--adp-balance"]) == 2
    assert "--attn-dp 1" in capsys.readouterr().err
    assert cli_main(base[:3] + ["--adp-balance"]) == 2
    assert "--served" in capsys.readouterr().err


@pytest.mark.parametrize("model, gpu, kw", [
    ("Llama-3.1-8B", "H100", dict(engine="vllm")), ("Llama-3.1-8B", "H100", dict(engine="roofline")),
    ("Llama-3.1-8B", "H100", dict(engine="vllm", pp=2)),
    ("DeepSeek-V3", "H200", dict(tp=8, engine="sglang")),
    ("DeepSeek-V3", "H200", dict(tp=1, attn_dp=8, ep=8, engine="trtllm", concurrency=[4, 64])),
    ("Qwen3-30B-A3B", "H100", dict(tp=2, engine="roofline"))])
def test_speculative_points_show_their_draft_and_verify(model, gpu, kw):
    """With speculative decoding the parts still sum to `max_throughput`'s TTFT and TPOT (every iteration in token
    time, as it prices it): the k draft forwards in ``draft``, the draft layer's prefill of the prompts in
    ``draft_prefill``, the kernels the verify's; both zero with it off."""
    spec = inference.Speculative("mtp" if model == "DeepSeek-V3" else "eagle", 3, (0.8, 0.6, 0.4))
    a = dict(input_len=2000, output_len=300, **kw)
    a.setdefault("concurrency", 32)
    for s in (None, spec):
        mt = inference.max_throughput(model, gpu, speculative=s, **a)
        bd = served_breakdown(model, gpu, speculative=s, **a)
        parts = bd[list(SERVED_COMPONENTS)].to_numpy()
        assert np.all(parts >= 0.0)
        for phase, col in (("ttft", "ttft_ms"), ("tpot", "tpot_ms")):
            np.testing.assert_allclose(_phase(bd, phase)["total_ms"], mt[col], rtol=1e-9, atol=0)
        tpot = _phase(bd, "tpot")
        if s is None:
            assert (bd[list(SPEC_TERMS)] == 0).all().all()
        else:
            # TPOT's decode window holds the other sequences' prompts, not the request's own (its TTFT's): one
            # sequence a rank (4 clients on 8 attention-DP ranks) leaves almost none in it; what it holds there is
            # the share of the cycle that the lockstep round's TTFT leaves to the window (`estimate.cycle_split`:
            # the other ranks' prompts at the experts fall in its decode steps, `estimate.lockstep_round_s`)
            alone = (mt["batch_size"] == 1).to_numpy()
            assert (tpot["draft"] > 0).all() and (_phase(bd, "ttft")["draft_prefill"] > 0).all()
            assert (tpot["draft_prefill"].to_numpy()[~alone] > 0).all()
            assert (tpot["draft_prefill"][alone] < 1e-3 * tpot["total_ms"][alone]).all()
            assert (_phase(bd, "decode_step")["draft_prefill"] == 0).all()   # a decode step carries no prompt


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_lockstep_round_prices_the_cycles_iterations_in_both(engine, monkeypatch):
    """`served_breakdown` prices the lockstep round (`estimate.lockstep_steady_terms`, one home for
    `estimate._run_ttft_s` and it) with the cycle's iterations `n_it`, as `_run_ttft_s` does: before, it passed
    none and `lockstep_round_s` derived its own (the same today, so only a caller's adjusted `n_it` would have
    split the two apart silently). Both still add to `max_throughput`'s TTFT."""
    estimate = importlib.import_module("objectives.inference.estimate")   # the package's `estimate` is the function
    seen: list[object] = []
    inner = estimate.lockstep_round_s

    def spy(*a, **k):
        seen.append(a[8] if len(a) > 8 else k.get("n_it"))
        return inner(*a, **k)

    monkeypatch.setattr(estimate, "lockstep_round_s", spy)
    a = dict(tp=1, attn_dp=8, ep=8, input_len=2048, output_len=128, concurrency=64, engine=engine)
    bd = served_breakdown("DeepSeek-V3", "H200", **a)
    mt = inference.max_throughput("DeepSeek-V3", "H200", **a)
    assert len(seen) >= 2 and all(n is not None for n in seen)
    np.testing.assert_allclose(_phase(bd, "ttft")["total_ms"], mt["ttft_ms"], rtol=1e-9, atol=0)
    ttft = _phase(bd, "ttft")
    assert (ttft[list(SERVED_COMPONENTS)].to_numpy() >= 0.0).all()
    assert float(ttft["rank_wait"].iloc[0]) > 0.0    # the step in progress holds the slowest rank's prompt tokens
