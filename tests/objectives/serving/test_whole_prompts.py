"""The analytical serving model without chunked prefill under a prompt-length mixture (`ServingModel._mixture`):
a whole prompt longer than the iteration's budget left by the running decodes is scheduled only alone, so at the
head of the queue it waits for every decode in flight to finish, and every prompt behind it waits too
(`residual_tail`, `drain_nodes`). The simulator is the reference."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import serving
from objectives.serving import traces
from objectives.serving.analytical import Deployments, ServingModel, drain_nodes, residual_tail

MODEL = "Llama-3.1-8B"
PAIRS = (("ttft_ms", "ttft_ms_mean"), ("ttft_ms_p50", "ttft_ms_p50"), ("ttft_ms_p99", "ttft_ms_p99"))


def _whole(max_num_tokens: int) -> Deployments:
    return Deployments.of(gpu="H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", prefix_caching=False,
                          chunked_prefill=False, max_num_tokens=max_num_tokens)


@pytest.mark.parametrize("rate,bounds", [
    # Azure 2023 code sample's lengths (40 % of prompts over 2,048 tokens, outputs 1 .. 800 tokens) with Poisson
    # arrivals, Llama-3.1-8B H100 fp8, whole prompts, max_num_tokens 2048. Before: mean / p50 / p99 TTFT
    # 0.69 / 1.03 / 0.17 (2 req/s) and 0.42 / 0.84 / 0.11 (4 req/s) the simulator's (the drains unseen); now
    # 1.10 / 1.03 / 0.86 and 1.19 / 1.46 / 0.83; with the drains' steps decode-only (the queue held) and a backlog's
    # drain of whole decodes (`drain_cdf`) 0.99 / 1.21 / 0.61 at 4 req/s
    (2.0, {"ttft_ms": (0.85, 1.3), "ttft_ms_p50": (0.8, 1.3), "ttft_ms_p99": (0.65, 1.3)}),
    (4.0, {"ttft_ms": (0.85, 1.4), "ttft_ms_p50": (0.7, 1.7), "ttft_ms_p99": (0.55, 1.3)}),
])
def test_long_whole_prompts_wait_for_the_decodes_to_drain(rate, bounds):
    w = serving.Workload(trace=traces.load_sample("azure_code_2023"), rate=rate)
    ana = ServingModel(MODEL, w).evaluate(_whole(2048)).iloc[0]
    sim = serving.simulate(MODEL, "H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", workload=w,
                           scheduler=serving.Scheduler(prefix_caching=False, chunked_prefill=False,
                                                       max_num_tokens=2048))
    r = {a: float(ana[a]) / float(sim[s]) for a, s in PAIRS}
    for metric, (lo, hi) in bounds.items():
        assert lo < r[metric] < hi, (rate, metric, r)


def test_no_drain_where_every_prompt_fits_the_budget():
    """The same lengths at max_num_tokens 8192 (every prompt fits beside the decodes): no drain; at 2048 the
    long prompts' drains raise the TTFT tail far above it."""
    w = serving.Workload(trace=traces.load_sample("azure_code_2023"), rate=2.0)
    m = ServingModel(MODEL, w)
    small, big = m.evaluate(_whole(2048)).iloc[0], m.evaluate(_whole(8192)).iloc[0]
    assert small["ttft_ms_p99"] > 2.0 * big["ttft_ms_p99"], (small["ttft_ms_p99"], big["ttft_ms_p99"])
    assert small["ttft_ms"] > big["ttft_ms"]


def test_residual_and_drain_of_fixed_outputs_are_uniform_closed_forms():
    """Every request decoding D steps: caught at a random step, R is uniform on [0, D] (P(R > r) = 1 - r / D); the
    max over a Poisson(n) number of them has mean D (1 - (1 - exp(-n)) / n), and none in flight drains in 0."""
    D = 200.0
    r, tail, mean = residual_tail(np.full(50, D))
    assert mean == D
    np.testing.assert_allclose(tail, 1.0 - r / D, atol=1e-12)
    occ = np.array([0.0, 0.3, 2.0, 10.0])
    steps, v = drain_nodes((r, tail, mean), occ)
    assert steps.shape == (4, len(v)) and abs(v.sum() - 1.0) < 1e-12
    exact = D * (1.0 - (1.0 - np.exp(-occ[1:])) / occ[1:])
    np.testing.assert_allclose(steps[1:] @ v, exact, rtol=0.01)
    assert np.all(steps[0] == 0.0)
    assert np.all(np.diff(steps, axis=1) >= 0) and np.all(np.diff(steps @ v) > 0)


def test_residual_tail_is_length_biased():
    """Half the requests decode 10 steps, half 1,000: one in flight is the long one 99 % of the time, so
    P(R > 500) = E[(D - 500)+] / E[D] = 0.5 x 500 / 505."""
    r, tail, mean = residual_tail(np.array([10.0, 1000.0]))
    assert mean == 505.0
    assert abs(np.interp(500.0, r, tail) - 250.0 / 505.0) < 1e-3
    r0, tail0, mean0 = residual_tail(np.zeros(3))
    assert mean0 == 0.0 and not tail0.any()
