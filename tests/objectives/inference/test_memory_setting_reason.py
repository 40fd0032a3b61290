"""A refusal for want of memory on an engine whose memory setting is a share of the device (vLLM's
gpu_memory_utilization, SGLang's mem_fraction_static) names the setting in force and the one it fits from, and
`estimate` takes the setting as `max_throughput` does (the new-user trial of session 38, item 5: SGLang's wide
attention DP said "does not fit" at 17 % memory use, SGLang's default reservation growing with the DP ranks)."""
from __future__ import annotations

import re

import pytest

from objectives import inference

WIDE = dict(gpu="GB200", tp=1, attn_dp=64, ep=64, engine="sglang", input_len=4096, output_len=1024)


@pytest.mark.parametrize("model", ["moonshotai/Kimi-K2.5", "deepseek-ai/DeepSeek-R1"])
def test_wide_attention_dp_on_sglang_names_its_default_and_the_setting_it_fits_from(model):
    r = inference.estimate(model=model, batch_size=1, **WIDE)
    assert not bool(r["fits"].iloc[0])
    assert float(r["mem_per_gpu_gib"].iloc[0]) < 0.25 * 185.0           # far below the device's memory
    why = str(r["reason"].iloc[0])
    assert "sglang's default mem_fraction_static gives its pool 0.04" in why
    assert "kv_pool.sglang_reserved_bytes" in why
    m = re.search(r"it fits from mem_fraction_static ([0-9.]+): pass gpu_memory_utilization=([0-9.]+)", why)
    assert m, why
    need, up = float(m.group(1)), float(m.group(2))
    assert 0.1 < need <= up < need + 0.011
    # the setting named fits, in estimate and in max_throughput, and one just below it does not
    assert bool(inference.estimate(model=model, batch_size=1, gpu_memory_utilization=up, **WIDE)["fits"].iloc[0])
    assert not bool(inference.estimate(model=model, batch_size=1, gpu_memory_utilization=need - 0.01,
                                       **WIDE)["fits"].iloc[0])
    mt = inference.max_throughput(model=model, **WIDE)
    assert not bool(mt["fits"].iloc[0]) and "it fits from mem_fraction_static" in str(mt["reason"].iloc[0])
    assert bool(inference.max_throughput(model=model, gpu_memory_utilization=0.8, **WIDE)["fits"].iloc[0])


def test_a_setting_given_is_named_and_no_setting_is_offered_where_none_helps():
    r = inference.estimate(model="meta-llama/Llama-3.1-70B-Instruct", gpu="H100", weight_dtype="bf16",
                           engine=["vllm", "trtllm"], batch_size=1)
    vllm, trt = (str(x) for x in r["reason"])
    assert "no setting makes room" in vllm and "gpu_memory_utilization=" not in vllm.split("no setting")[1]
    # TensorRT-LLM's setting is a share of the memory left: its reason stays the table's
    assert trt == inference.resolve.REASONS[inference.resolve.R_MEM]
    small = inference.estimate(model="meta-llama/Llama-3.1-8B-Instruct", gpu="H100", engine="vllm", batch_size=1,
                               gpu_memory_utilization=0.1)
    assert "gpu_memory_utilization=0.1 gives its pool 0.100" in str(small["reason"].iloc[0])


@pytest.mark.parametrize("bad", [0.0, 1.5, True, "0.8"])
def test_estimate_refuses_a_setting_outside_0_1(bad):
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        inference.estimate(model="meta-llama/Llama-3.1-8B-Instruct", gpu="H100", gpu_memory_utilization=bad)


def test_the_default_setting_changes_nothing():
    a = inference.estimate(model="meta-llama/Llama-3.1-8B-Instruct", gpu="H100", engine=["vllm", "sglang"],
                           batch_size=64, input_len=2048)
    b = inference.estimate(model="meta-llama/Llama-3.1-8B-Instruct", gpu="H100", engine=["vllm", "sglang"],
                           batch_size=64, input_len=2048, gpu_memory_utilization=None)
    assert a.equals(b)
