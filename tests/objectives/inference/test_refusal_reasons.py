"""A configuration the engines refuse says so in its row (``fits`` False) with a reason that names the value it
refuses and the values that would run, by the rule of the engine asked for (`resolve.reason_text`); a pipeline of
more stages than the model has layers is refused like the other degrees, by `estimate`, the simulator's
`StepModel` and the spaces alike."""
from __future__ import annotations

import pytest

from dse import SpaceError
from objectives import inference, serving
from objectives.inference.resolve import R_PP, R_TP, REASONS
from spaces.parallelism import parallelism


def test_pp_beyond_the_layers_is_refused_naming_the_layers():
    r = inference.estimate(model="Llama-3.1-8B", gpu="H100", batch_size=8, input_len=1024, output_len=128,
                           pp=[1, 32, 33, 64])
    assert r["fits"].tolist() == [True, True, False, False]
    for pp, why in zip((33, 64), r["reason"].iloc[2:]):
        assert why.startswith(REASONS[R_PP]) and f"pp={pp}" in why and "32 layers" in why and "1 to 32" in why
    w = serving.Workload(concurrency=1, input_len=64, output_len=4, n_requests=1)
    with pytest.raises(ValueError, match="pp=33 on Llama-3.1-8B with 32 layers"):
        serving.simulate("Llama-3.1-8B", "H100", pp=33, workload=w)
    with pytest.raises(SpaceError, match="33"):
        parallelism("Llama-3.1-8B", 64, pp=[33])


def test_a_tp_that_splits_no_heads_names_the_heads_and_the_valid_tp():
    r = inference.estimate(model="meta-llama/Llama-3.3-70B-Instruct", gpu="H100", batch_size=8, input_len=1024,
                           output_len=128, tp=[3, 8, 3])
    why = r["reason"].iloc[0]
    assert why.startswith(REASONS[R_TP]) and "tp=3" in why and "64 attention heads, 8 KV heads" in why
    assert why.endswith("valid tp: 1, 2, 4, 8, 16, 32, 64") and r["reason"].iloc[2] == why
    assert r["reason"].iloc[1] == "" and r["fits"].tolist() == [False, True, False]


@pytest.mark.parametrize("engine, tp, attn_dp, ep, says", [
    ("vllm", 8, 1, 16, "ep=16 must divide the tp x attn_dp = 8 x 1 = 8 GPUs"),
    ("vllm", 1, 8, 4, "vLLM's expert parallelism spans all tp x attn_dp ranks"),
    ("trtllm", 2, 4, 8, "TensorRT-LLM's attention DP runs attention unsplit"),
])
def test_layout_and_ep_refusals_name_the_values_by_the_engines_own_rule(engine, tp, attn_dp, ep, says):
    r = inference.estimate(model="deepseek-ai/DeepSeek-R1", gpu="H200", batch_size=8, input_len=1024,
                           output_len=128, tp=tp, attn_dp=attn_dp, ep=ep, engine=engine)
    why = str(r["reason"].iloc[0])
    assert not r["fits"].iloc[0] and says in why
    other = "TensorRT-LLM" if engine == "vllm" else "vLLM"
    assert other not in why           # only the engine asked for: its rule, its valid layouts
    assert "valid" in why and (f"ep={ep}" in why or f"tp={tp}" in why)
