"""A closed loop's TTFT percentiles hold its start-up wave (`analytical.closed_loop_ttft_quantiles`): every client's
first request is prefilled in one wave, the k-th prompt after the k - 1 ahead of it in full-budget iterations, so a
p99 SLO at a fixed max-concurrency reads the wave where it holds more than 1 % of the requests (the new-user trial of
session 38, item 1: the analytical closed loop stored ttft_ms_p99 = ttft_ms_p50 = the mean, 196 ms, where the
simulator's p99 was 876 ms)."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import serving
from objectives.serving import Deployments, ServingModel, Workload
from objectives.serving.analytical import closed_loop_ttft_quantiles

TRIAL = dict(model="Qwen/Qwen3-30B-A3B", gpu="B200", engine="trtllm", weight_dtype="fp8")


def _pcts(model: str, w: Workload, **dep) -> tuple[np.ndarray, np.ndarray]:
    a = ServingModel(model, w).evaluate(Deployments.of(**dep)).iloc[0]
    s = serving.simulate(model, dep.pop("gpu"), workload=w, **dep)
    keys = ("p50", "p90", "p99")
    return (np.array([float(a[f"ttft_ms_{k}"]) for k in keys]), np.array([float(s[f"ttft_ms_{k}"]) for k in keys]))


def test_the_trials_p99_is_the_wave_as_the_simulator_sees_it():
    w = Workload(concurrency=64, input_len=2048, output_len=256, n_requests=1280)
    d = dict(TRIAL)
    an, sim = _pcts(d.pop("model"), w, **d)
    assert an[2] > 3.0 * an[0]                      # the tail is the wave, not the mean
    assert np.all(np.abs(np.log(an / sim)) < np.log(1.35)), (an, sim)


@pytest.mark.parametrize("model,gpu,engine,tp,conc,isl,n", [
    ("meta-llama/Llama-3.1-8B-Instruct", "H100", "vllm", 1, 16, 2048, 640),
    ("meta-llama/Llama-3.1-8B-Instruct", "H100", "sglang", 1, 256, 1024, 5000),
])
def test_dense_vllm_and_sglang_p90_p99_within_a_third_of_the_simulator(model, gpu, engine, tp, conc, isl, n):
    w = Workload(concurrency=conc, input_len=isl, output_len=256, n_requests=n)
    an, sim = _pcts(model, w, gpu=gpu, engine=engine, tp=tp, weight_dtype="bf16")
    assert np.all(np.abs(np.log(an[1:] / sim[1:])) < np.log(1.3)), (an, sim)


def test_the_waves_share_is_the_clients_over_the_requests_sent():
    d = Deployments.of(gpu="B200", engine="trtllm", weight_dtype="fp8")
    p99 = {n: float(ServingModel(TRIAL["model"], Workload(concurrency=64, input_len=2048, output_len=256,
                                                          n_requests=n)).evaluate(d)["ttft_ms_p99"].iloc[0])
           for n in (640, 5000, 20000, None)}
    # 10 % and 1.28 % of the requests in the wave: p99 deep in it, then near its start; 0.32 %: the steady state's
    assert p99[640] > p99[5000] > p99[20000]
    # no n_requests: the 2000 the simulator sends (serving.workload.DEFAULT_N_REQUESTS)
    two = Workload(concurrency=64, input_len=2048, output_len=256, n_requests=2000)
    assert p99[None] == pytest.approx(float(ServingModel(TRIAL["model"], two).evaluate(d)["ttft_ms_p99"].iloc[0]))


def test_the_mixture_reads_the_wave_where_a_percentile_falls_in_it():
    one = dict(mean_ms=np.array([200.0]), mean_share=np.array([0.1]), wave_iter_ms=np.array([60.0]),
               wave_iters=np.array([16.0]), wave_base_ms=np.array([20.0]), floor_ms=np.array([60.0]))
    q = closed_loop_ttft_quantiles(share=0.05, **one)
    # p99: 0.8 of the wave's 16 iterations (the wave holds 5 %: (0.99 - 0.95) / 0.05), 13 iterations of 60 ms
    assert q["p99"][0] == pytest.approx(20.0 + 13 * 60.0, abs=0.5)
    assert q["p50"][0] < 200.0 < q["p90"][0] < q["p99"][0]
    # no wave share: the steady state's spread alone, its p99 far below the wave's
    q0 = closed_loop_ttft_quantiles(share=0.0, **one)
    assert q0["p99"][0] < 0.6 * q["p99"][0] and q0["p50"][0] >= 60.0
    # a wave shorter than the steady state (few clients) adds no tail
    short = dict(one, wave_iters=np.array([1.0]), wave_iter_ms=np.array([50.0]))
    qs = closed_loop_ttft_quantiles(share=0.5, **short)
    qn = closed_loop_ttft_quantiles(share=0.0, **short)
    assert all(qs[k][0] == pytest.approx(qn[k][0]) for k in qs)


def test_a_row_without_a_priced_wave_keeps_its_mean():
    q = closed_loop_ttft_quantiles(np.array([100.0, np.nan]), np.array([0.1, 0.1]), 0.05, np.array([np.nan, 60.0]),
                                   np.array([16.0, 16.0]), np.array([20.0, 20.0]), np.array([60.0, 60.0]))
    assert all(q[k][0] == 100.0 and np.isnan(q[k][1]) for k in q)
