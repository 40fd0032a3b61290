"""A closed-loop client's cycle includes the host time (`inference.estimate.host_ttft_s`): it sends its next request
once it has read the last token of its previous one, not when the GPU finishes it. So the clients obey Little's law
with the e2e they see, clients = X x e2e (X: requests/s), with more clients than slots (the host time is spent
outside the queue, `estimate.queue_waits`) and with fewer (the clients, not the GPU, set X)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objectives import inference
from objectives.inference.breakdown import served_breakdown
from objectives.inference.core import default_eff
from objectives.inference.efficiency import from_params

#: (model, GPU, tp, ep, attn_dp): a dense model and an MoE one on attention-DP ranks in lockstep
LAYOUTS = [("Llama-3.1-8B", "H100-SXM-80GB", 1, 1, 1), ("Qwen3-30B-A3B", "H200-SXM-141GB", 2, 2, 2)]


def _rows(model, gpu, tp, ep, adp, engine, dp, isl, osl, conc, mbs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return inference.max_throughput(model, gpu, tp=tp, ep=ep, attn_dp=adp, dp=dp, engine=engine,
                                        input_len=isl, output_len=osl, concurrency=conc, max_batch_size=mbs, **kw)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=st.sampled_from(LAYOUTS), engine=st.sampled_from(["vllm", "sglang", "trtllm", "roofline"]),
       dp=st.sampled_from([1, 2]),
       conc=st.lists(st.integers(1, 600), min_size=3, max_size=3),
       isl=st.sampled_from([128, 1024, 8192]), osl=st.sampled_from([2, 64, 1024]),
       mbs=st.sampled_from([None, 8, 64]))
def test_clients_equal_requests_per_s_times_the_e2e_they_see(layout, engine, dp, conc, isl, osl, mbs):
    # saturated or not, churn (a small cache under many clients) or not: conc = X x e2e, X = throughput / output
    r = _rows(*layout, engine, dp, isl, osl, np.array(conc, dtype=float), mbs)
    ok = r["fits"].to_numpy()
    x = r["throughput_tok_s"].to_numpy(float)[ok] / osl
    np.testing.assert_allclose(x * r["e2e_ms"].to_numpy(float)[ok] / 1e3, np.array(conc, dtype=float)[ok],
                               rtol=1e-6)


def _with_ttft(ms: float):
    params = default_eff().params
    return from_params({**params, "engine_ttft_ms": {k: ms for k in params["engine_ttft_ms"]}})


def test_more_clients_than_slots_spend_the_host_time_outside_the_queue():
    # 16 slots (max_batch_size), a cache far larger: no churn. At 16 clients no queue: e2e = host + the GPU's
    # residency; at 64, 48 wait for a slot: the clients' cycle is 64 / 16 residencies, the host time in it
    kw = dict(isl=1024, osl=256, mbs=16)
    for engine in ("vllm", "sglang"):
        r = _rows("Llama-3.1-8B", "H100-SXM-80GB", 1, 1, 1, engine, 1, conc=np.array([16.0, 64.0]), **kw)
        assert list(r["batch_size"]) == [16, 16]
        bd = served_breakdown("Llama-3.1-8B", "H100-SXM-80GB", engine=engine, input_len=1024, output_len=256,
                              max_batch_size=16, concurrency=16)
        host = float(bd.loc[bd["phase"] == "ttft", "front_end"].iloc[0])
        assert host > 5.0                                        # an engine's API server: tens of ms
        e2e, ttft, tpot = (r[k].to_numpy(float) for k in ("e2e_ms", "ttft_ms", "tpot_ms"))
        window0, window1 = 255.0 * tpot[0], 255.0 * tpot[1]
        gpu0 = e2e[0] - host - window0
        # at 64 the cycle is 64 / 16 residencies, each the GPU's TTFT of a prompt admitted as a slot frees
        # (`estimate.released_prompt_work`: no round of prompts queued ahead) and the window
        residency = e2e[1] / 4.0
        gpu1 = residency - window1
        assert 0.0 < gpu1 < gpu0
        # either way the residency is the GPU's request cycle (`estimate.cycle_split`): the released prompt's
        # shorter TTFT leaves more of the others' prompts to its window
        assert residency == pytest.approx(gpu0 + window0, rel=1e-9)
        assert tpot[1] > tpot[0]
        # the queue is the slot wait less the host time: TTFT = host + GPU + 3 residencies - host
        assert ttft[1] == pytest.approx(gpu1 + 3.0 * residency, rel=1e-9)


def test_a_longer_host_time_slows_the_clients_below_the_slots_and_not_above():
    # the same GPU; 1 s more of API server before the first token. With fewer clients than slots their cycle grows
    # by it and their requests/s fall; with more clients than slots the queue absorbs it (as long as it is longer)
    kw = dict(isl=1024, osl=256, mbs=16, conc=np.array([8.0, 256.0]))
    a = _rows("Llama-3.1-8B", "H100-SXM-80GB", 1, 1, 1, "vllm", 1, efficiency=_with_ttft(40.0), **kw)
    b = _rows("Llama-3.1-8B", "H100-SXM-80GB", 1, 1, 1, "vllm", 1, efficiency=_with_ttft(1040.0), **kw)
    # the GPU's steady state: above the slots unchanged; below them the longer host time lets more of a round's
    # prompts reach the scheduler together (`lockstep.round_queue`'s lag, the thirty-seventh round), so its TTFT
    # holds more of the same cycle and its window less (re-pinned from equal)
    tp_a, tp_b = a["tpot_ms"].to_numpy(float), b["tpot_ms"].to_numpy(float)
    assert tp_b[1] == pytest.approx(tp_a[1], rel=1e-12)
    assert tp_a[0] * 0.9 < tp_b[0] < tp_a[0]
    e2e_a, e2e_b = a["e2e_ms"].to_numpy(float), b["e2e_ms"].to_numpy(float)
    assert e2e_b[0] == pytest.approx(e2e_a[0] + 1000.0, rel=1e-9)
    thr_a, thr_b = a["throughput_tok_s"].to_numpy(float), b["throughput_tok_s"].to_numpy(float)
    assert thr_b[0] == pytest.approx(thr_a[0] * e2e_a[0] / e2e_b[0], rel=1e-9)
    assert e2e_b[1] == pytest.approx(e2e_a[1], rel=1e-9)
    assert thr_b[1] == pytest.approx(thr_a[1], rel=1e-9)
    assert b["ttft_ms"].iloc[1] == pytest.approx(a["ttft_ms"].iloc[1], rel=1e-9)


def _cycle_parts(bd):
    """(the request cycle's ms, its prefill iterations' ms each, the tpot row) of a one-configuration breakdown."""
    pf, dec, tpot = (bd[bd["phase"] == ph].iloc[0] for ph in ("prefill_iteration", "decode_step", "tpot"))
    return pf["iterations"] * pf["total_ms"] + dec["iterations"] * dec["total_ms"], pf["total_ms"], tpot


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_tpot_times_the_decode_window_the_cycle_less_the_own_prompt(engine):
    # TPOT as the engines' benchmarks time it, (e2e - TTFT) / (osl - 1) (vLLM's benchmarks/serve.py): of the cycle of
    # the sequences in flight (an MoE model: prefill iterations and pure decode steps), the request's GPU TTFT (its
    # own prompt, those that arrived with it and the queue ahead: 64 x 2k prompts, beside decodes or alone as SGLang
    # runs them) and its window (the decodes and the others' prompts) add up to the cycle (`estimate.cycle_split`).
    # It read cycle / osl before, the own iteration counted twice; then the window was the cycle less a full prefill
    # iteration, whatever the TTFT held
    kw = dict(tp=2, ep=2, engine=engine, input_len=2048, output_len=256, concurrency=64)
    r = _rows("Qwen3-30B-A3B", "H200-SXM-141GB", 2, 2, 1, engine, 1, 2048, 256, 64.0, None)
    bd = served_breakdown("Qwen3-30B-A3B", "H200-SXM-141GB", **kw)
    cycle, own, tpot = _cycle_parts(bd)
    ttft = bd[bd["phase"] == "ttft"].iloc[0]
    assert float(r["tpot_ms"].iloc[0]) == pytest.approx(tpot["total_ms"], rel=1e-9)
    assert ttft["queue"] == 0.0      # 64 clients, as many slots
    assert 255.0 * tpot["total_ms"] + ttft["total_ms"] - ttft["front_end"] == pytest.approx(cycle, rel=1e-9)
    # a full prefill iteration exceeds two mean ones; the window's iterations carry less than a full one each
    assert own > 2.0 * cycle / 256.0 and tpot["total_ms"] < own
    e2e, ttft = float(r["e2e_ms"].iloc[0]), float(r["ttft_ms"].iloc[0])
    assert e2e - ttft == pytest.approx(255.0 * tpot["total_ms"], rel=1e-9)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_one_output_token_reads_the_mean_iteration(engine):
    # output_len == 1: no decode window (vLLM's benchmark reports 0, the simulator NaN); the TPOT reads the cycle's
    # mean iteration, as `estimate` reads its decode step there, and the e2e is the TTFT
    kw = dict(tp=2, ep=2, engine=engine, input_len=2048, output_len=1, concurrency=64)
    r = _rows("Qwen3-30B-A3B", "H200-SXM-141GB", 2, 2, 1, engine, 1, 2048, 1, 64.0, None)
    bd = served_breakdown("Qwen3-30B-A3B", "H200-SXM-141GB", **kw)
    cycle, _, tpot = _cycle_parts(bd)
    its = bd.loc[bd["phase"].isin(["prefill_iteration", "decode_step"]), "iterations"].sum()
    assert float(r["tpot_ms"].iloc[0]) == pytest.approx(cycle / its, rel=1e-9)
    assert float(r["tpot_ms"].iloc[0]) == pytest.approx(tpot["total_ms"], rel=1e-9)
    assert float(r["e2e_ms"].iloc[0]) == float(r["ttft_ms"].iloc[0])
