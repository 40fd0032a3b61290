"""Closed loops just past the KV pool (N sequences in flight a little below the clients, `inference.admission.
queue_blend`, read by `inference.max_throughput`): the N admitted still run in waves that overflow the cache at their
end, as where all clients fit (`wave_retraction`, `wave_overflow`), and the queue of the others dissolves the waves
into the queue's steady churn (`churn`, `preemption_churn`) as it grows. Checked against the serving simulator,
which runs SGLang's retraction and vLLM's preemption."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import inference, serving
from objectives.inference.admission import QUEUE_BLEND, queue_blend
from objectives.inference.estimate import blend_churn
from objectives.serving import Scheduler, Workload

M, G = "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM-80GB"


def test_the_queue_weight_grows_from_the_pool_to_its_full_churn():
    """0 where all clients fit (N >= conc), QUEUE_BLEND x (conc / N - 1) just past the pool, 1 from conc = N x
    (1 + 1 / QUEUE_BLEND) on."""
    N = np.array([64.0, 64.0, 60.0, 50.0, 40.0, 20.0])
    conc = np.array([32.0, 64.0, 64.0, 64.0, 64.0, 64.0])
    w = queue_blend(N, conc)
    assert w.tolist() == pytest.approx([0.0, 0.0, QUEUE_BLEND * 4 / 60, QUEUE_BLEND * 14 / 50, 1.0, 1.0])
    assert float(queue_blend(40.0, 40.0 * (1 + 1 / QUEUE_BLEND))) == pytest.approx(1.0)


def test_the_blend_is_each_path_at_its_ends_and_weights_the_tokens_by_rate():
    """w = 0: the waves' retractions and tokens, bit for bit; w = 1: the queue churn's, bit for bit; between, the
    rates mixed and the tokens weighted by each part's rate; off the overflowing rows the queue churn's."""
    wave, queue = (np.full(4, 0.4), np.full(4, 7000.0)), (np.full(4, 1.2), np.full(4, 3700.0))
    w = np.array([0.0, 1.0, 0.25, 0.25])
    on = np.array([True, True, True, False])
    rho, redo = blend_churn(w, wave, queue, on)
    assert rho[0] == 0.4 and redo[0] == 7000.0 and rho[1] == 1.2 and redo[1] == 3700.0
    assert rho[2] == pytest.approx(0.75 * 0.4 + 0.25 * 1.2)
    assert redo[2] == pytest.approx((0.75 * 0.4 * 7000 + 0.25 * 1.2 * 3700) / (0.75 * 0.4 + 0.25 * 1.2))
    assert rho[3] == 1.2 and redo[3] == 3700.0


def _closed(engine: str, isl: int, osl: int, conc: int, cap: int) -> dict[str, float]:
    r = inference.max_throughput(M, G, tp=1, engine=engine, input_len=isl, output_len=osl, concurrency=conc,
                                 kv_capacity_tokens=cap)
    return {k: float(r[k].iloc[0]) for k in ("batch_size", "ttft_ms", "tpot_ms")}


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_one_client_past_the_pool_waits_about_as_long_as_all_fitting(engine):
    """Llama 1k / 16k, 32 clients: a pool one sequence short of them (N = 31) queues one client for whole cycles
    and its 31 still overflow at their waves' end, so the TTFT stays near that of a pool that just holds all 32
    (where the churn path alone priced a third of it)."""
    isl, osl, conc = 1024, 16384, 32
    short, fits = _closed(engine, isl, osl, conc, 288_000), _closed(engine, isl, osl, conc, 320_000)
    assert short["batch_size"] == conc - 1 and fits["batch_size"] == conc
    assert 0.8 < short["ttft_ms"] / fits["ttft_ms"] < 1.6


@pytest.mark.parametrize("engine, isl, osl, conc, cap", [("sglang", 1024, 16384, 32, 288_000),
                                                          ("sglang", 1024, 8192, 96, 460_800),
                                                          ("vllm", 1024, 8192, 32, 160_000),
                                                          ("vllm", 1024, 16384, 96, 864_000)])
def test_closed_form_and_simulator_agree_just_past_the_pool(engine, isl, osl, conc, cap):
    """Llama-3.1-8B on one H100, N / clients 0.94-0.97 (10 requests a client): the closed form's mean TTFT is the
    simulator's within 0.65-1.35x (the churn path alone read 0.25-0.53x), TPOT within 8 %."""
    c = _closed(engine, isl, osl, conc, cap)
    assert 0.9 * conc <= c["batch_size"] < conc
    s = serving.simulate(M, G, tp=1, engine=engine, scheduler=Scheduler(kv_capacity_tokens=cap),
                         workload=Workload(concurrency=conc, input_len=isl, output_len=osl, n_requests=10 * conc))
    assert 0.65 < c["ttft_ms"] / s["ttft_ms_mean"] < 1.35
    assert c["tpot_ms"] == pytest.approx(s["tpot_ms_mean"], rel=0.08)
