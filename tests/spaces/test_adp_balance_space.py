"""`spaces.llm_serving(adp_balance=...)`: TensorRT-LLM's attention-DP balance as a search dimension, active only
where it changes a trial (the engine is TensorRT-LLM, attn_dp > 1, aggregated mode), refused where every trial
would be the same with either value or fail; every trial it yields is priced by the objective and launched by
`dse deploy`."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import spaces
from dse.errors import SpaceError
from objectives import deploy, llm_serving_objective, serving

MOE = "Qwen3-30B-A3B"
KW = dict(max_gpus=8, attn_dp=[1, 4], tp=[1, 2], formats=["fp8"], kv_dtypes=["fp8"], max_batch_sizes=[64],
          max_num_tokens=[8192], chunked_prefill=[True], adp_balance=[False, True])


def _set(v) -> bool:
    return v is not None and not (isinstance(v, float) and np.isnan(v))


def test_the_balance_is_a_knob_only_where_it_changes_the_trial():
    g = spaces.llm_serving(MOE, ["B200"], engines=["vllm", "trtllm"], **KW).grid()
    active = g["adp_balance"].map(_set).to_numpy()
    where = ((g["engine"] == "trtllm") & (g["attn_dp"] > 1)).to_numpy()
    assert active.any() and list(active) == list(where)
    # both values on each such layout, one trial elsewhere (no duplicates)
    keys = [c for c in g.columns if c != "adp_balance"]
    on = g[active].groupby(keys, observed=True)["adp_balance"].apply(lambda s: sorted(s.tolist()))
    assert all(v == [False, True] for v in on)
    assert not g[~active].duplicated(keys).any()
    # in a space with both modes only aggregated trials carry it
    g2 = spaces.llm_serving(MOE, ["B200"], engines=["trtllm"], modes=("agg", "disagg"), **KW).grid()
    act2 = g2["adp_balance"].map(_set)
    assert act2.any() and (g2.loc[act2, "mode"] == "agg").all()


def test_every_trial_is_priced_and_deployed_and_the_knob_moves_the_ttft():
    g = spaces.llm_serving(MOE, ["B200"], engines=["trtllm"], **KW).grid()
    obj = llm_serving_objective(MOE, workload=serving.Workload(concurrency=64, input_len=2048, output_len=256))
    m = obj(g)
    assert (m["fits"] == 1.0).all()
    g = g.assign(ttft=m["ttft_ms"].to_numpy())
    act = g["adp_balance"].map(_set)
    pairs = g[act].astype({"adp_balance": bool}).pivot_table(index=["tp", "pp", "attn_dp", "ep"], columns="adp_balance",
                                                            values="ttft", observed=True)
    assert len(pairs) and (pairs[True] > pairs[False]).all()      # the prompt waits for the balance's release
    for _, r in g[act].iterrows():
        cmds = deploy.commands(r.dropna().to_dict(), engine="trtllm", model=MOE,
                               workload={"input_len": 2048, "output_len": 256})
        assert ("enable_balance" in str(cmds)) == bool(r["adp_balance"])


@pytest.mark.parametrize("change, words", [
    (dict(model="Llama-3.1-8B"), "dense"), (dict(attn_dp=None), "no attn_dp above 1"),
    (dict(attn_dp=[1]), "no attn_dp above 1"), (dict(engines=None), "only trtllm"),
    (dict(engines=["vllm", "sglang"]), "only trtllm"), (dict(modes=("disagg",)), "add 'agg' to modes"),
    (dict(adp_balance=True), "not a sequence"), (dict(adp_balance=["on"]), "True / False")])
def test_a_balance_every_trial_ignores_or_fails_is_refused(change, words):
    kw = {**dict(model=MOE, gpus=["B200"], engines=["vllm", "trtllm"]), **KW, **change}
    with pytest.raises(SpaceError, match="adp_balance") as e:
        spaces.llm_serving(**kw)
    assert words in str(e.value), str(e.value)


def test_the_objective_reads_a_missing_knob_as_off():
    obj = llm_serving_objective(MOE, workload=serving.Workload(concurrency=64, input_len=2048, output_len=256))
    cfg = dict(gpu="B200", tp=1, attn_dp=4, ep=4, engine="trtllm")
    a, b = obj(pd.DataFrame([cfg])), obj(pd.DataFrame([{**cfg, "adp_balance": False}]))
    assert a["ttft_ms"].iloc[0] == b["ttft_ms"].iloc[0]
