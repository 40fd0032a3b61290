"""The open loop's prefill pool lags as the closed loop's does (`serving.analytical`, `handoff.front_end`'s lag): a
prompt that finds a prefill worker busy under an overlapping scheduler (vLLM's async scheduling from 0.14) waits
for the step formed ahead too, with the chance busy^2; none where the release or the role has no such loop."""
from __future__ import annotations

import pytest

from objectives import serving


def _ttft(engine: str, rate: float) -> float:
    d = serving.Deployments.of(gpu="H100", tp=1, dp=3, weight_dtype="fp8", kv_dtype="fp8", max_batch_size=256,
                               max_num_tokens=8192, engine=engine, mode="disagg", prefill_replicas=1)
    w = serving.Workload(rate=rate, input_len=2048, output_len=256, n_requests=1000)
    return float(serving.ServingModel("Llama-3.1-8B", w).evaluate(d).iloc[0]["ttft_ms"])


def test_an_overlapping_prefill_worker_lags_more_the_busier_it_is():
    lag = {r: _ttft("vllm", r) - _ttft("vllm~=0.13.0", r) for r in (3.0, 12.0)}
    assert 0.0 < lag[3.0] < lag[12.0] < 20.0       # busy^2 of a step like the prompt's own (a 2k prefill)
    # TensorRT-LLM's context servers run without the loop, in every release
    assert _ttft("trtllm", 12.0) == pytest.approx(_ttft("trtllm~=0.21.0", 12.0), rel=1e-12)
