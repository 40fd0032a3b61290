"""Requests longer than the model's context: `estimate` and `max_throughput` give such rows fits=False with a reason
of their own (R_CONTEXT), as the engines refuse them; the rule is the one `serving.workload.context_refusal` applies."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from objectives import catalog, inference
from objectives.inference.efficiency import default_efficiency
from objectives.inference.resolve import R_CONTEXT, R_MEM, REASONS, context_invalid, serves_past_context
from objectives.serving.workload import context_refusal

EFF = default_efficiency()  # tests do not depend on the fitted file
MODEL = "Llama-3.1-8B"


def _lengths(context: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_len, output_len) pairs below, at and past ``context`` tokens of prompt and output."""
    return np.array([1000, context - 100, context - 99, context, context - 1]), np.array([100, 100, 100, 1, 1])


def test_estimate_and_max_throughput_refuse_requests_past_the_context():
    context = catalog.model(MODEL).max_position
    assert context > 0
    isl, osl = _lengths(context)
    over = isl + osl > context                          # only the last two of the middle three go past it
    assert over.tolist() == [False, False, True, True, False]
    for fn, kw in ((inference.estimate, {"batch_size": 1}), (inference.max_throughput, {})):
        df = fn(MODEL, "H200", input_len=isl, output_len=osl, engine="roofline", efficiency=EFF, **kw)
        assert (df["fits"].to_numpy() == ~over).all(), fn.__name__
        assert (df["reason"].astype(str).to_numpy()[over] == REASONS[R_CONTEXT]).all()
        assert (df["reason"].astype(str).to_numpy()[~over] == "").all()
        # the prediction itself is still priced: only the verdict changes
        assert np.isfinite(df["ttft_ms"].to_numpy()).all()


def test_context_checked_before_memory():
    # a request past the context on a GPU it does not fit either: the context is named (fixing memory would not help)
    context = catalog.model("Llama-3.1-70B").max_position
    df = inference.estimate("Llama-3.1-70B", "L4", input_len=[1000, context], output_len=100, engine="roofline",
                            efficiency=EFF)
    assert df["reason"].astype(str).tolist() == [REASONS[R_MEM], REASONS[R_CONTEXT]]


def test_model_without_a_known_context_is_never_refused_for_length():
    m = dataclasses.replace(catalog.model(MODEL), max_position=0)
    df = inference.max_throughput(m, "H200", input_len=10**6, output_len=10, engine="roofline", efficiency=EFF)
    assert str(df["reason"].iloc[0]) != REASONS[R_CONTEXT]


def test_one_rule_with_the_workload_check():
    m = catalog.model(MODEL)
    c = m.max_position
    tokens = np.array([1, c - 1, c, c + 1, 10 * c])
    vec = context_invalid(c, tokens)
    assert vec.tolist() == [False, False, False, True, True]
    assert [context_refusal(m, int(t)) is not None for t in tokens] == vec.tolist()
    assert not context_invalid(0, tokens).any()          # unknown context: never refused


def test_mixed_models_each_judged_on_its_own_context():
    small = dataclasses.replace(catalog.model(MODEL), name="short", max_position=4096)
    df = inference.estimate([small, catalog.model(MODEL)], "H200", input_len=8000, output_len=100,
                            engine="roofline", efficiency=EFF)
    assert df["fits"].tolist() == [False, True]
    assert isinstance(df["reason"].dtype, pd.CategoricalDtype)
    assert str(df["reason"].iloc[0]) == REASONS[R_CONTEXT]


def test_large_sweep_factorized_rows():
    # above the factorizing threshold the per-model context is gathered per row, as every other model column
    small = dataclasses.replace(catalog.model(MODEL), name="short", max_position=4096)
    models = np.array([small, catalog.model(MODEL)], dtype=object)[np.arange(6000) % 2]
    isl = np.where(np.arange(6000) % 3 == 0, 8000, 1000)
    df = inference.max_throughput(models, "H200", input_len=isl, output_len=64, engine="roofline", efficiency=EFF)
    want = (np.arange(6000) % 2 == 0) & (isl == 8000)
    assert (df["fits"].to_numpy() == ~want).all()
    assert (df["reason"].astype(str).to_numpy()[want] == REASONS[R_CONTEXT]).all()


def test_tensorrt_llm_serves_past_the_context():
    """TensorRT-LLM builds its engine for the max_seq_len asked for and only warns past max_position_embeddings
    (tensorrt_llm/builder.py `build`), as its published tables ran GPT-J-6B at 2,048 + 2,048 tokens of a 2,048
    context: its rows are judged on memory alone, vLLM's, SGLang's and the closed form's still refused (one sweep,
    and in max_throughput)."""
    assert catalog.model("GPT-J-6B").max_position == 2048
    engines = ["trtllm", "vllm", "sglang", "roofline"]
    for fn, kw in ((inference.estimate, {"batch_size": 8}), (inference.max_throughput, {})):
        df = fn("GPT-J-6B", "H100", input_len=2048, output_len=2048, engine=engines, efficiency=EFF, **kw)
        assert df["fits"].tolist() == [True, False, False, False], fn.__name__
        assert df["reason"].astype(str).tolist()[1:] == [REASONS[R_CONTEXT]] * 3
    # past the context and past memory: memory is named on TensorRT-LLM
    big = inference.estimate("GPT-J-6B", "H100", batch_size=64, input_len=2048, output_len=2048, engine="trtllm",
                             efficiency=EFF)
    assert str(big["reason"].iloc[0]) == REASONS[R_MEM]
    assert context_invalid(2048, 4096, serves_past_context(["trtllm", "vllm"])).tolist() == [False, True]


def test_simulate_serves_what_max_throughput_serves_past_the_context():
    """The serving side (`Workload.exceeds_context`, `serving.simulate`, `capacity`, the objective, `dse deploy`)
    follows `context_invalid`'s engine rule: GPT-J-6B at 2,048 + 2,048 tokens of a 2,048 context is served by
    TensorRT-LLM in `simulate` as in `max_throughput`, and still refused on vLLM and SGLang, naming the request's
    tokens, the engine and the context."""
    import pytest

    from objectives import serving
    from objectives.deploy import DeployError, commands
    from objectives.llm_serving import ObjectiveError, llm_serving_objective
    m = catalog.model("GPT-J-6B")
    w = serving.Workload(concurrency=2, input_len=2048, output_len=2048, n_requests=4)
    mt = inference.max_throughput("GPT-J-6B", "H100", input_len=2048, output_len=2048, engine="trtllm")
    assert bool(mt["fits"].iloc[0])
    out = serving.simulate("GPT-J-6B", "H100", workload=w, engine="trtllm")
    assert out["throughput_tok_s"] > 0
    assert w.exceeds_context(m, "trtllm") is None
    assert context_refusal(m, 4096, engine="trtllm") is None
    for engine in ("vllm", "sglang", None):
        msg = w.exceeds_context(m, engine)
        assert msg is not None and "4096 tokens" in msg and "context of 2048 tokens" in msg
        assert msg == context_refusal(m, 4096, fix="shorten input_len / output_len (a Dist's max= or high=)",
                                      engine=engine)
    with pytest.raises(ValueError, match=r"\(4096 tokens .*context of 2048 tokens.*engine 'vllm' refuses it"):
        serving.simulate("GPT-J-6B", "H100", workload=w, engine="vllm")
    with pytest.raises(ValueError, match=r"engine 'sglang' refuses it.*TensorRT-LLM serves past it"):
        serving.simulate("GPT-J-6B", "H100", workload=w, engine="sglang")
    # the objective judges the defaults' engine; dse deploy its own
    wd = {"concurrency": 2, "input_len": 2048, "output_len": 2048}
    llm_serving_objective("GPT-J-6B", workload=wd, defaults={"gpu": "H100", "engine": "trtllm"})
    with pytest.raises(ObjectiveError, match=r"context of 2048 tokens"):
        llm_serving_objective("GPT-J-6B", workload=wd, defaults={"gpu": "H100"})
    with pytest.raises(DeployError, match=r"context of 2048 tokens.*engine 'vllm'"):
        commands({"gpu": "H100"}, engine="vllm", model="GPT-J-6B", workload=wd)
    assert commands({"gpu": "H100"}, engine="trtllm", model="GPT-J-6B", workload=wd).engine == "trtllm"
