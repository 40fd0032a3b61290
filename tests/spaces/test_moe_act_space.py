"""``spaces.llm_serving(moe_act_dtypes=...)``: the MXFP4 experts' activation knob as a dimension, active only where
the experts are MXFP4, and the spaces every trial of which would fail or repeat refused when built."""
from __future__ import annotations

import pytest

import dse
import spaces

GPT = "gpt-oss-120b"
KW = dict(max_batch_sizes=(64,), max_num_tokens=(8192,), chunked_prefill=(True,), kv_dtypes=["fp8"])


def test_the_knob_is_active_only_on_fp4_weights_and_mxfp8_only_on_blackwell():
    s = spaces.llm_serving(GPT, ["B200", "MI355X"], 1, formats=["fp4", "fp8"], moe_act_dtypes=("auto", "bf16", "mxfp8"),
                           **KW)
    assert list(s.params["moe_act_dtype"].choices) == ["auto", "bf16", "mxfp8"]
    g = s.grid()
    active = g["moe_act_dtype"].notna()
    assert (active == (g["weight_dtype"] == "fp4")).all() and active.any() and (~active).any()
    on = g[active]
    assert set(on.loc[on["gpu"] == "B200", "moe_act_dtype"]) == {"auto", "bf16", "mxfp8"}
    # MI355X computes in fp4 but no engine runs MXFP4 experts with MXFP8 activations there
    assert set(on.loc[on["gpu"] == "MI355X", "moe_act_dtype"]) == {"auto", "bf16"}
    base = spaces.llm_serving(GPT, ["B200", "MI355X"], 1, formats=["fp4", "fp8"], **KW).grid()
    assert len(g) == len(base) + int((base["weight_dtype"] == "fp4").sum()) + int(
        ((base["weight_dtype"] == "fp4") & (base["gpu"] == "B200")).sum())
    assert dse.Space.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("model, gpus, kw, msg", [
    ("Llama-3.1-8B", ["B200"], {}, r"Llama-3.1-8B has no experts \(dense\)"),
    ("Qwen3-30B-A3B", ["B200"], {}, r"Qwen3-30B-A3B has no MXFP4 experts"),
    (GPT, ["B200"], dict(formats=["fp8"]), r"weight formats \['fp8'\] hold no fp4"),
    (GPT, ["MI355X"], {}, r"'mxfp8' runs on none of the GPUs \['MI355X'\]"),
    (GPT, ["B200"], dict(values=("auto", "fp8")), r"\['fp8'\] not allowed; give a sequence of auto, bf16, mxfp8"),
    (GPT, ["B200"], dict(values="mxfp8"), r"not a sequence"),
    (GPT, ["B200"], dict(values=()), r"empty not allowed"),
])
def test_spaces_whose_knob_would_fail_or_repeat_every_trial_are_refused(model, gpus, kw, msg):
    values = kw.pop("values", ("auto", "mxfp8"))
    with pytest.raises(dse.SpaceError, match=r"^moe_act_dtypes=.*" + msg):
        spaces.llm_serving(model, gpus, 1, moe_act_dtypes=values, **{**KW, **kw})


def test_with_an_engine_knob_mxfp8_on_the_rtx_pro_6000_stays_with_tensorrt_llm():
    s = spaces.llm_serving(GPT, ["RTX-PRO-6000", "B200"], 1, formats=["fp4"], moe_act_dtypes=("auto", "bf16", "mxfp8"),
                           engines=["vllm", "sglang", "trtllm"], **KW)
    g = s.grid()
    mx = g[g["moe_act_dtype"] == "mxfp8"]
    assert set(mx.loc[mx["gpu"] == "RTX-PRO-6000", "engine"]) == {"trtllm"}
    assert set(mx.loc[mx["gpu"] == "B200", "engine"]) == {"vllm", "sglang", "trtllm"}
    assert set(g.loc[g["gpu"] == "RTX-PRO-6000", "engine"]) == {"vllm", "sglang", "trtllm"}
