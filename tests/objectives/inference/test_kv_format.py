"""KV-cache formats the engines cannot store are refused (`resolve.kv_format_invalid`, R_KV): an FP4 KV cache runs on
datacenter Blackwell only (vLLM's and TensorRT-LLM's 'nvfp4', SGLang's 'fp4_e2m1'), so kv_dtype="fp4" on a Hopper,
Ampere, the SM120 RTX PRO 6000 or an AMD GPU is fits=False with a reason naming the value and the valid ones, in
`estimate`, `max_throughput` and the simulator alike (the new-user trial of session 38, item 2: it was accepted
everywhere at a quarter of bf16's bytes)."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import inference, serving
from objectives.inference.resolve import FP4_KV_FAMILIES, R_KV, REASONS, kv_format_invalid

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm", "roofline"])
@pytest.mark.parametrize("gpu", ["H100", "A100", "RTX-PRO-6000"])
def test_fp4_kv_is_refused_before_datacenter_blackwell_naming_value_and_valid_ones(gpu, engine):
    r = inference.max_throughput(model=MODEL, gpu=gpu, input_len=8192, output_len=1024,
                                 kv_dtype=["bf16", "fp8", "fp4"], engine=engine)
    assert r["fits"].tolist() == [True, True, False]
    why = str(r["reason"].iloc[2])
    assert why.startswith("kv_dtype='fp4' on ") and "valid kv_dtype here: bf16, fp16, fp8" in why
    assert engine in why
    e = inference.estimate(model=MODEL, gpu=gpu, batch_size=8, kv_dtype="fp4", engine=engine)
    assert not bool(e["fits"].iloc[0]) and str(e["reason"].iloc[0]) == why


@pytest.mark.parametrize("engine,name", [("vllm", "--kv-cache-dtype nvfp4"), ("sglang", "fp4_e2m1"),
                                         ("trtllm", "dtype='nvfp4'")])
def test_the_reason_names_the_engines_own_spelling(engine, name):
    r = inference.estimate(model=MODEL, gpu="H200", kv_dtype="fp4", engine=engine)
    assert name in str(r["reason"].iloc[0])


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_fp4_kv_runs_on_b200_at_half_the_fp8_bytes(engine):
    r = inference.max_throughput(model=MODEL, gpu="B200", input_len=8192, output_len=1024,
                                 kv_dtype=["fp8", "fp4"], engine=engine)
    assert r["fits"].all() and (r["reason"].astype(str) == "").all()
    assert r["batch_size"].iloc[1] >= 1.9 * r["batch_size"].iloc[0]


def test_the_rule_by_family_and_the_other_rules_first():
    fams = ("ampere", "ada", "hopper", "blackwell", "blackwell-ultra", "blackwell-rtx", "cdna3", "cdna4")
    from objectives.catalog.types import DTYPES
    from objectives.inference.efficiency import FAMILIES
    codes = np.array([FAMILIES.index(f) for f in fams])
    bad = kv_format_invalid(DTYPES.index("fp4"), codes)
    assert [f for f, b in zip(fams, bad) if not b] == list(FP4_KV_FAMILIES)
    assert not kv_format_invalid(DTYPES.index("fp8"), codes).any()
    # an engine that does not run on the GPU's vendor says that, not the KV format
    r = inference.estimate(model=MODEL, gpu="MI355X", kv_dtype="fp4", engine=["trtllm", "vllm"])
    assert "vendor" in str(r["reason"].iloc[0])
    assert str(r["reason"].iloc[1]).startswith("kv_dtype='fp4' on MI355X")
    assert REASONS[R_KV].startswith("kv_dtype='fp4'")


def test_the_simulator_refuses_it_with_the_same_reason():
    w = serving.Workload(concurrency=4, input_len=512, output_len=32, n_requests=8)
    with pytest.raises(ValueError, match=r"kv_dtype='fp4' on H100-SXM-80GB \(hopper\) with vllm.*valid kv_dtype "
                                         r"here: bf16, fp16, fp8"):
        serving.simulate(MODEL, "H100", workload=w, engine="vllm", kv_dtype="fp4")
    assert serving.simulate(MODEL, "B200", workload=w, engine="vllm", kv_dtype="fp4")["n_requests"] == 8
