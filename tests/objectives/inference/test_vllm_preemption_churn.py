"""vLLM's preemption churn in the closed form (`inference.admission.preemption_churn` / `front_stints`, read by
`inference.max_throughput`): where its cache bounds the batch below the clients, the last admitted request is
preempted, recomputed (less what its prefix cache kept) and waits at the front of the queue, which moves queue time
from its TTFT into its time per output token. Checked against the serving simulator, which runs vLLM V1's admission
and preemption."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import inference, serving
from objectives.inference.admission import (
    PREEMPT_WAIT_CYCLES,
    PREEMPTED_AT,
    PREEMPTED_KEPT,
    front_stints,
    preemption_churn,
    stints,
)
from objectives.serving import Workload

M, G = "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM-80GB"


def _closed(isl: int, osl: int, conc: int, engine: str = "vllm") -> dict[str, float]:
    r = inference.max_throughput(M, G, tp=1, engine=engine, input_len=isl, output_len=osl, concurrency=conc)
    return {k: float(r[k].iloc[0]) for k in ("batch_size", "ttft_ms", "tpot_ms", "throughput_tok_s", "e2e_ms")}


def test_preemptions_and_their_recompute():
    """Each preemption frees the victim's prompt and output so far: osl / (isl + PREEMPTED_AT x osl) per request
    where the cache binds; the prefix cache (on) keeps PREEMPTED_KEPT of what it prefills again, off none."""
    freed = 1024 + PREEMPTED_AT * 8192
    rho, redo = preemption_churn(np.array([1024, 1024]), np.array([8192, 8192]), np.array([True, False]))
    assert rho.tolist() == pytest.approx([8192 / freed, 0.0])
    assert redo.tolist() == pytest.approx([(1 - PREEMPTED_KEPT) * freed] * 2)
    _, redo_off = preemption_churn(1024, 8192, True, np.array([True, False]))
    assert redo_off.tolist() == pytest.approx([(1 - PREEMPTED_KEPT) * freed, freed])


def test_max_throughput_prices_the_recompute_without_the_prefix_cache():
    """A KV-bound vLLM closed loop (256 clients of 1k / 8k): with the prefix cache off each preemption prefills its
    whole prompt and output so far again, so the request cycle is longer; one row per setting, True the default."""
    kw = dict(tp=1, engine="vllm", input_len=1024, output_len=8192, concurrency=256)
    on, off = inference.max_throughput(M, G, prefix_caching=[True, False], **kw)["tpot_ms"].to_numpy()
    assert off > on
    assert float(inference.max_throughput(M, G, **kw)["tpot_ms"].iloc[0]) == pytest.approx(on, rel=1e-12)
    with pytest.raises(TypeError, match="prefix_caching"):
        inference.max_throughput(M, G, prefix_caching="yes", **kw)


def test_a_preempted_request_waits_at_the_front():
    """PREEMPT_WAIT_CYCLES of a cycle per preemption after the first token, the rest of the wait before it; never
    less before it than the back-of-queue split's first stint, never more after it than the whole wait."""
    first, after = front_stints(1000.0, 2.0, 200.0)
    assert float(after) == PREEMPT_WAIT_CYCLES * 200.0 and float(first) == 1000.0 - 2.0 * float(after)
    first, after = front_stints(90.0, 2.0, 200.0)        # little wait: the first stint is still a third of it
    assert float(first) == float(stints(90.0, 2.0)) and float(after) == 45.0


def test_vllm_churns_only_where_the_cache_binds():
    """64 clients that fit: no preemption, TPOT the cycle's; 256 on the same cache: preemptions move queue time into
    TPOT, and e2e = TTFT + (osl - 1) x TPOT throughout."""
    few = _closed(1024, 1024, 64)
    assert few["batch_size"] == 64
    assert few["tpot_ms"] < 1024 * 1e3 / few["throughput_tok_s"] * 64 / 1024    # the cycle's, not the clients'
    # (the clients' cycle is their e2e, host time in: Little's law, 64 = requests/s x e2e)
    assert few["e2e_ms"] == pytest.approx(64 * 1024 * 1e3 / few["throughput_tok_s"], rel=1e-9)
    many = _closed(1024, 8192, 256)
    cycle_tpot = 8192 * 1e3 / many["throughput_tok_s"] * many["batch_size"] / 8192
    assert many["batch_size"] < 256 and many["tpot_ms"] > 1.5 * cycle_tpot
    assert many["e2e_ms"] == pytest.approx(many["ttft_ms"] + 8191 * many["tpot_ms"], rel=1e-12)


@pytest.mark.parametrize("isl, osl", [(1024, 8192), (8192, 8192)])
def test_closed_form_and_simulator_agree_on_vllms_churn(isl, osl):
    """Llama-3.1-8B bf16 on one H100, vLLM, 256 clients, KV-bound: the simulator preempts about two requests per
    request at 1k / 8k and 0.6 at 8k / 8k; before, the closed form gave TPOT 27.6 ms against 52.3 (1k / 8k) and TTFT
    447 s against 240 s. TPOT within 15 %, TTFT within 20 %, throughput within 5 %."""
    c = _closed(isl, osl, 256)
    s = serving.simulate(M, G, tp=1, engine="vllm",
                         workload=Workload(concurrency=256, input_len=isl, output_len=osl, n_requests=2048))
    assert c["batch_size"] < 256 and s["preemptions"] > 1000
    assert s["tpot_ms_mean"] == pytest.approx(c["tpot_ms"], rel=0.15)
    assert s["ttft_ms_mean"] == pytest.approx(c["ttft_ms"], rel=0.20)
    assert s["requests_per_s"] * osl == pytest.approx(c["throughput_tok_s"], rel=0.05)
