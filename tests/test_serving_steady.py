"""The event-loop simulator agrees with the closed-form steady state on closed-loop fixed-length workloads
(real StepModel iteration times): throughput and TPOT within 5 %, TTFT within a factor of 2."""
from __future__ import annotations

import pytest

from objectives import serving

CASES = [
    # model, gpu, tp, weight dtype, concurrency, input, output, scheduler kwargs, dp
    ("Llama-3.1-8B", "H100", 1, "bf16", 64, 2048, 256, {}, 1),
    ("Llama-3.1-8B", "H100", 1, "bf16", 16, 512, 512, {}, 1),
    ("Llama-3.1-70B", "H100", 4, "fp8", 32, 1024, 128, {}, 1),
    ("Llama-3.1-8B", "H100", 1, "bf16", 256, 1024, 512, {}, 1),
    ("Llama-3.1-8B", "A100", 1, "bf16", 64, 2048, 256, {"policy": "prefill_first"}, 1),
    ("Llama-3.1-8B", "H100", 1, "bf16", 64, 2048, 256, {"chunked_prefill": False}, 2),
    ("Llama-3.1-8B", "L40S", 1, "fp8", 64, 1024, 256, {"max_batch_size": 32}, 1),   # queueing
    ("Llama-3.3-70B", "H100", 2, "fp8", 150, 5000, 500, {}, 1),                     # KV-bound, preempting
]


@pytest.mark.parametrize("model,gpu,tp,wd,n,i,o,kw,dp", CASES)
def test_simulator_agrees_with_steady_state(model, gpu, tp, wd, n, i, o, kw, dp):
    w = serving.Workload(concurrency=n, input_len=i, output_len=o, n_requests=20 * n)
    s = serving.Scheduler(**kw)
    sim = serving.simulate(model, gpu, tp=tp, weight_dtype=wd, workload=w, scheduler=s, dp=dp)
    ss = serving.steady_state(model, gpu, tp=tp, weight_dtype=wd, workload=w, scheduler=s, dp=dp)
    assert ss["throughput_tok_s"] == pytest.approx(sim["throughput_tok_s"], rel=0.05)
    assert ss["tpot_ms_mean"] == pytest.approx(sim["tpot_ms_mean"], rel=0.05)
    assert 0.5 < ss["ttft_ms_mean"] / sim["ttft_ms_mean"] < 2.0
    assert ss["n_gpus"] == sim["n_gpus"] == dp * tp


def test_steady_state_refuses_open_loop_and_drawn_lengths():
    with pytest.raises(ValueError, match="closed-loop"):
        serving.steady_state("Llama-3.1-8B", "H100", workload=serving.Workload(rate=2.0))
    with pytest.raises(ValueError, match="fixed input_len"):
        serving.steady_state("Llama-3.1-8B", "H100", workload=serving.Workload(
            concurrency=4, input_len=serving.Dist("uniform", low=1, high=9)))
