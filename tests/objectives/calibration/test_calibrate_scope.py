"""What a user's calibrated profile changes is what its rows measured (the new-user trial of session 38, item 4:
`dse calibrate` on three vLLM H100 rows wrote the fit into SGLang's and TensorRT-LLM's engine factors and moved the
profile_attn_scale every engine shares, 1.164 -> 0.725): the factors one value tied over every engine are fitted for
the rows' engines only, a factor no engine owns only where the rows identify it (`silicon.shared_identified`), and
the summary says which engines and GPUs the file changes. Files written before keep loading."""
from __future__ import annotations

import json

import pandas as pd

from objectives import inference
from objectives.calibration.calibrate import FORMAT, fit, load_profile
from objectives.calibration.silicon import shared_identified
from objectives.inference.core import default_eff
from tests.helpers import DATA

VLLM_A = DATA / "vllm_bench_serve" / "openai-infqps-concurrency4-Llama-3.1-8B-Instruct-20261203-120000.json"
JSON_DEPLOYMENT = dict(gpu="h200_sxm", tp=1, weight_dtype="bf16")


def test_a_vllm_fit_writes_vllms_factors_only_and_keeps_the_shared_ones(tmp_path):
    out = tmp_path / "cal.json"
    doc = fit([VLLM_A], out, max_nfev=3, **JSON_DEPLOYMENT)
    names = list(doc["factors"])
    assert names and all(n.endswith(".vllm") for n in names), names
    assert doc["scope"]["engines"] == ["vllm"] and doc["scope"]["gpus_measured"] == ["H100-SXM-80GB"]   # its metadata's GPU
    assert doc["scope"]["kept_shipped"] == ["profile_attn_scale"]
    eff = load_profile(out)
    assert eff.params["profile_attn_scale"] == default_eff().params["profile_attn_scale"]
    # the other engines are costed as shipped; vLLM's (on every GPU) as fitted
    kw = dict(model="meta-llama/Llama-3.1-8B-Instruct", gpu="H100", batch_size=32, input_len=1024, output_len=256)
    for engine in ("sglang", "trtllm"):
        a = inference.estimate(engine=engine, **kw)
        b = inference.estimate(engine=engine, profile=str(out), **kw)
        assert a["tpot_ms"].iloc[0] == b["tpot_ms"].iloc[0] and a["ttft_ms"].iloc[0] == b["ttft_ms"].iloc[0]
    assert inference.estimate(engine="vllm", profile=str(out), **kw)["tpot_ms"].iloc[0] != \
        inference.estimate(engine="vllm", **kw)["tpot_ms"].iloc[0]


def test_the_cli_summary_names_the_engines_and_gpus_it_changes(tmp_path, capsys):
    from dse.cli import main
    out = tmp_path / "cal.json"
    assert main(["calibrate", str(VLLM_A), "--gpu", "h200_sxm", "--tp", "1", "--weight-dtype", "bf16", "-o",
                 str(out), "--max-nfev", "2"]) == 0
    text = capsys.readouterr().out
    assert "changes engines: vllm (on every GPU" in text and "measured H100-SXM-80GB" in text
    assert "keeps the shipped profile_attn_scale" in text


def test_shared_factors_need_two_engines_and_two_lengths():
    rows = pd.DataFrame({"engine": ["vllm", "vllm", "sglang"], "isl": [1024, 2048, 1024], "osl": [128, 128, 128]})
    assert shared_identified(rows)
    assert not shared_identified(rows[rows["engine"] == "vllm"])            # one engine
    assert not shared_identified(rows.assign(isl=1024))                     # one length


def test_a_profile_written_before_the_scope_still_loads(tmp_path):
    old = tmp_path / "old.json"
    factors = {"engine_step_ms.vllm": 0.5, "engine_step_ms.sglang": 0.5, "profile_attn_scale": 0.725}
    old.write_text(json.dumps({"format": FORMAT, "factors": factors, "rows": 3}))
    eff = load_profile(old)
    assert eff.params["profile_attn_scale"] == 0.725 and eff.params["engine_step_ms"]["sglang"] == 0.5
