"""`spaces.llm_serving(engines=[...])` takes the engine strings the cost model takes ("vllm", " VLLM ",
"vllm@0.24.0", "sglang==0.5.14") and stores each engine once under its canonical name, the one the cost model's rows
carry; a version no GPU of the space has a profile of is refused naming the versions there are, not left to cost
the space's unprofiled GPUs alone on the roofline."""
from __future__ import annotations

import pytest

import spaces
from dse.errors import DSEError
from objectives import inference


def test_engine_spellings_are_stored_once_under_the_name_the_rows_carry():
    g = spaces.llm_serving("Llama-3.1-8B", ["H100-SXM-80GB"], max_gpus=1,
                           engines=[" VLLM ", "vllm", "vllm@0.24.0", "SGLang==0.5.14"]).grid()
    assert sorted(set(g["engine"])) == ["sglang==0.5.14", "vllm", "vllm==0.24.0"]
    row = inference.estimate(model="Llama-3.1-8B", gpu="H100-SXM-80GB", engine="vllm@0.24.0").iloc[0]
    assert row["engine"] == "vllm==0.24.0"


def test_a_version_no_gpu_of_the_space_has_is_refused_naming_the_versions():
    with pytest.raises(DSEError) as e:
        spaces.llm_serving("Llama-3.1-8B", ["H100-SXM-80GB", "MI300X"], max_gpus=1, engines=["vllm==0.11"])
    msg = str(e.value)
    assert "'vllm==0.11'" in msg and "0.24.0" in msg and "H100-SXM-80GB" in msg, msg
    # a bare engine name on the same GPUs is a space (MI300X on the roofline, H100 on vLLM's tables)
    g = spaces.llm_serving("Llama-3.1-8B", ["H100-SXM-80GB", "MI300X"], max_gpus=1, engines=["vllm"]).grid()
    assert set(g["gpu"]) == {"H100-SXM-80GB", "MI300X"}
