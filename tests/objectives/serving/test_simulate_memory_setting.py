"""The engine's memory flag given to the simulator (`Scheduler(gpu_memory_utilization=...)`: vLLM's
gpu_memory_utilization, SGLang's mem_fraction_static, TensorRT-LLM's kv_cache_free_gpu_memory_fraction) decides
whether a deployment fits, as it does in `inference.max_throughput` (helper u13f's user pass: a deployment that the
engine's default refuses and its flag admits was refused by `serving.simulate` whatever the flag said)."""
from __future__ import annotations

import pytest

from objectives import inference, serving
from objectives.serving import Scheduler, Workload

# Llama-3.1-70B bf16 on two H100s: 65.7 GiB of weights per GPU. SGLang's default mem_fraction_static there is
# (81,559 - 13,568) / 81,559 MiB = 0.834 of the device (kv_pool.sglang_reserved_bytes): no room for a KV cache;
# at 0.9 (`--mem-fraction-static 0.9`) a few GiB are left for it
DEPLOY = dict(model="Llama-3.1-70B", gpu="H100", tp=2, weight_dtype="bf16", engine="sglang")
W = Workload(concurrency=4, input_len=1024, output_len=64, n_requests=8)


def _sim(scheduler: Scheduler | None = None) -> dict:
    d = dict(DEPLOY)
    return serving.simulate(d.pop("model"), d.pop("gpu"), workload=W, scheduler=scheduler, **d)


def test_the_engines_default_refuses_and_names_its_flag():
    with pytest.raises(ValueError, match=r"no room left for the KV cache.*mem_fraction_static.*0\.83.*"
                                         r"gpu_memory_utilization=0\.8[4-9]"):
        _sim()


def test_a_memory_setting_that_fits_runs_as_max_throughput_prices_it():
    m = _sim(Scheduler(gpu_memory_utilization=0.9))
    assert m["n_requests"] == 8 and m["tpot_ms_mean"] > 0
    d = dict(DEPLOY)
    r = inference.max_throughput(d.pop("model"), d.pop("gpu"), input_len=1024, output_len=64, concurrency=4,
                                 gpu_memory_utilization=0.9, **d)
    assert bool(r["fits"].iloc[0])
    # the same capacity as the step model's at that setting
    sm = inference.StepModel("Llama-3.1-70B", "H100", tp=2, weight_dtype="bf16", engine="sglang",
                             memory_setting=0.9)
    assert sm.kv_capacity_tokens == sm.kv_capacity_at(0.9) > 0


def test_a_memory_setting_too_small_is_still_refused():
    with pytest.raises(ValueError, match=r"no room left for the KV cache.*0\.5"):
        _sim(Scheduler(gpu_memory_utilization=0.5))


def test_a_share_of_the_memory_left_names_no_setting_that_cannot_help():
    """TensorRT-LLM's kv_cache_free_gpu_memory_fraction shares out what the weights leave: where they leave nothing
    no setting helps, and the refusal does not offer one."""
    with pytest.raises(ValueError, match=r"no room left for the KV cache") as e:
        inference.StepModel("Llama-3.1-70B", "H100", tp=1, weight_dtype="bf16", engine="trtllm")
    assert "gpu_memory_utilization=" not in str(e.value)


@pytest.mark.parametrize("bad", [0.0, 1.5, True])
def test_step_model_refuses_a_memory_setting_outside_0_1(bad):
    with pytest.raises((ValueError, TypeError), match="memory_setting"):
        inference.StepModel("Llama-3.1-8B", "H100", engine="vllm", memory_setting=bad)
