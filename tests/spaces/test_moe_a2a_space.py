"""``spaces.llm_serving(moe_a2a=...)``: the EP token exchange as a dimension, active only where an EP group spans
attention-DP ranks, each value only under the engines that run it, and the spaces every trial of which would fail
or repeat refused when built."""
from __future__ import annotations

import pytest

import dse
import spaces

DSV3 = "DeepSeek-V3"
KW = dict(max_batch_sizes=(64,), max_num_tokens=(8192,), chunked_prefill=(True,), kv_dtypes=["fp8"], formats=["fp8"])


def _wide(g):
    return (g["ep"] > 1) & ((g["attn_dp"] > 1) | (g["tp"] % g["ep"] != 0))


def test_the_knob_is_active_only_where_an_ep_group_spans_attention_dp_ranks():
    s = spaces.llm_serving(DSV3, ["H200-SXM-141GB"], 8, tp=[1, 8], attn_dp=[1, 8], moe_a2a=("auto", "allgather",
                                                                                                "deepep"), **KW)
    assert list(s.params["moe_a2a"].choices) == ["auto", "allgather", "deepep"]
    g = s.grid()
    active = g["moe_a2a"].notna()
    assert (active == _wide(g)).all() and active.any() and (~active).any()
    base = spaces.llm_serving(DSV3, ["H200-SXM-141GB"], 8, tp=[1, 8], attn_dp=[1, 8], **KW).grid()
    assert len(g) == len(base) + 2 * int(_wide(base).sum())
    assert dse.Space.from_dict(s.to_dict()) == s


def test_with_an_engine_knob_deepep_stays_off_tensorrt_llm():
    s = spaces.llm_serving(DSV3, ["H200-SXM-141GB"], 8, tp=[1], attn_dp=[8], moe_a2a=("allgather", "deepep"),
                           engines=["vllm", "sglang", "trtllm"], **KW)
    g = s.grid()
    assert set(g.loc[g["moe_a2a"] == "deepep", "engine"]) == {"vllm", "sglang"}
    assert set(g.loc[g["moe_a2a"] == "allgather", "engine"]) == {"vllm", "sglang", "trtllm"}


def test_allgather_beside_auto_is_kept_only_where_auto_launches_something_else():
    """vLLM's and SGLang's "auto" is their all-gather (`MOE_A2A_AUTO`): beside "auto" the space offers "allgather"
    only to TensorRT-LLM, whose "auto" differs, instead of evaluating the same trial twice."""
    s = spaces.llm_serving(DSV3, ["H200-SXM-141GB"], 8, tp=[1], attn_dp=[8], moe_a2a=("auto", "allgather"),
                           engines=["vllm", "sglang", "trtllm"], **KW)
    g = s.grid()
    assert set(g.loc[g["moe_a2a"] == "allgather", "engine"]) == {"trtllm"}
    assert set(g.loc[g["moe_a2a"] == "auto", "engine"]) == {"vllm", "sglang", "trtllm"}


def test_a_prefill_pool_of_its_own_takes_a_value_only_where_its_ep_spans_its_ranks_too():
    s = spaces.llm_serving(DSV3, ["H200-SXM-141GB"], 16, tp=[1, 8], attn_dp=[8], modes=("disagg",), prefill_tp=[1, 8],
                           prefill_ep=[8], prefill_attn_dp=[1, 8], moe_a2a=("auto", "deepep"), **KW)
    g = s.grid()
    dep = g[g["moe_a2a"] == "deepep"]
    assert len(dep) and ((dep["prefill_attn_dp"] > 1) | (dep["prefill_tp"] % dep["prefill_ep"] != 0)).all()
    assert ((g["prefill_tp"] == 8) & (g["prefill_attn_dp"] == 1) & (g["moe_a2a"] == "auto")).any()


@pytest.mark.parametrize("model, kw, msg", [
    ("Llama-3.1-70B", {}, r"Llama-3.1-70B is dense"),
    (DSV3, dict(tp=[8], ep=[1]), r"no EP above 1"),
    (DSV3, dict(engines=["trtllm"], values=("auto", "deepep")), r"'deepep' runs under none of the engines \['trtllm'\]"),
    (DSV3, dict(values=("auto", "pplx")), r"\['pplx'\] not allowed; give a sequence of auto, allgather, deepep"),
    (DSV3, dict(values="deepep"), r"not a sequence"),
])
def test_spaces_whose_knob_would_fail_or_repeat_every_trial_are_refused(model, kw, msg):
    values = kw.pop("values", ("auto", "deepep"))
    kw.setdefault("attn_dp", [8])
    with pytest.raises(dse.SpaceError, match=r"^moe_a2a=.*" + msg):
        spaces.llm_serving(model, ["H200-SXM-141GB"], 8, moe_a2a=values, **{**KW, **kw})
