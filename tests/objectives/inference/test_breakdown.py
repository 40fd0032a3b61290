"""`inference.breakdown`: estimate's prefill forward and mean decode step split by component, and `dse breakdown`."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives import inference
from objectives.inference import core
from objectives.inference.breakdown import COMPONENTS
from objectives.inference.cli import main as cli_main
from tests.helpers.profiles import slow_table

#: a dense GQA model, MoE (GQA, MLA, DeepSeek sparse attention, MXFP4 with windows, latent-free), hybrids (Gated
#: DeltaNet, Mamba-2, Kimi Delta Attention), DeepSeek-V4's compressed attention, MiniMax sparse attention
MODELS = ["Llama-3.1-70B", "Qwen3-30B-A3B", "DeepSeek-V3", "GLM-5-FP8", "gpt-oss-120b", "Qwen3.5-35B-A3B",
          "Nemotron-3-Nano-30B-A3B", "Kimi-K3", "DeepSeek-V4-Flash", "MiniMax-M3", "gemma-3-12b"]


def _totals(est: pd.DataFrame) -> np.ndarray:
    """estimate's ttft_ms and tpot_ms interleaved, as breakdown's rows (configuration-major, prefill first)."""
    return np.column_stack([est["ttft_ms"], est["tpot_ms"]]).ravel()


@pytest.mark.parametrize("engine", [None, "roofline"])
@pytest.mark.parametrize("model", MODELS)
def test_the_components_sum_to_estimates_step_times_on_both_paths(model, engine):
    args = dict(tp=[[1], [8]], batch_size=[1, 7, 64], input_len=[[1000], [16384]], output_len=300, engine=engine)
    for gpu, kw in (("H200", {}), ("B200", {}), ("H200", dict(tp=4, pp=2, batch_size=[1, 8])),
                    ("H200", dict(tp=2, attn_dp=4, ep=8, batch_size=[1, 64], input_len=2048))):
        a = {**args, **kw}
        est = inference.estimate(model, gpu, **a)
        bd = inference.breakdown(model, gpu, **a)
        assert len(bd) == 2 * len(est)
        assert list(bd["phase"][:2]) == ["prefill", "decode"]
        parts = bd[list(COMPONENTS)].to_numpy()
        assert np.all(parts >= 0.0), (gpu, kw)
        np.testing.assert_allclose(parts.sum(axis=1), _totals(est), rtol=1e-9, atol=0)
        np.testing.assert_allclose(bd["total_ms"], _totals(est), rtol=1e-9, atol=0)
        # the configuration columns are estimate's, row for row
        for col in ("model", "gpu", "tp", "pp", "ep", "attn_dp", "engine", "source", "batch_size", "input_len"):
            assert list(bd[col][::2]) == list(est[col]), col
        if engine == "roofline":
            assert set(bd["source"]) == {"roofline"}


def test_a_mixed_batch_splits_each_row_by_its_own_path():
    """A profiled GPU beside one without a profile (V100: the closed form) in one call: each row's parts sum to its
    own estimate."""
    gpus = ["H200", "V100-SXM2-32GB"]
    est = inference.estimate("Llama-3.1-8B", gpus, batch_size=[[4], [32]])
    bd = inference.breakdown("Llama-3.1-8B", gpus, batch_size=[[4], [32]])
    assert set(est["source"]) == {"roofline", "interpolated"}
    np.testing.assert_allclose(bd[list(COMPONENTS)].to_numpy().sum(axis=1), _totals(est), rtol=1e-9, atol=0)


@pytest.mark.parametrize("engine", [None, "roofline"])
def test_phases_hold_their_own_attention_and_moe_shows_only_on_moe_models(engine):
    dense = inference.breakdown("Llama-3.1-70B", "H200", tp=4, batch_size=32, input_len=2048, engine=engine)
    moe = inference.breakdown("Qwen3-30B-A3B", "H200", tp=2, batch_size=32, input_len=2048, engine=engine)
    for bd in (dense, moe):
        pre, dec = bd.iloc[0], bd.iloc[1]
        assert pre["attention_prefill"] > 0 and pre["attention_decode"] == 0
        assert dec["attention_decode"] > 0 and dec["attention_prefill"] == 0
        assert pre["gemm"] > 0 and pre["comm_tp"] > 0 and pre["lm_head"] > 0 and pre["host_step"] > 0
        assert (bd[["comm_ep", "comm_pp", "linear_attention"]] == 0).all().all()
    assert (dense["moe"] == 0).all()
    assert (moe["moe"] > 0).all()
    # a decode step at batch 32 reads every expert's weights: the routed experts dominate Qwen3-30B-A3B's GEMMs
    assert moe["moe"].iloc[1] > moe["gemm"].iloc[1]


@pytest.mark.parametrize("engine", [None, "roofline"])
def test_hybrid_expert_parallel_and_pipelined_layouts_show_their_own_components(engine):
    gdn = inference.breakdown("Qwen3.5-35B-A3B", "H200", tp=2, batch_size=16, engine=engine)
    assert (gdn["linear_attention"] > 0).all()
    wide = inference.breakdown("DeepSeek-V3", "H200", tp=1, attn_dp=8, ep=8, batch_size=64, engine=engine)
    assert (wide["comm_ep"] > 0).all() and (wide["comm_tp"] == 0).all()
    piped = inference.breakdown("Llama-3.1-70B", "H200", tp=4, pp=2, batch_size=16, engine=engine)
    assert (piped["comm_pp"] > 0).all()


@pytest.mark.parametrize("model, kw, table, component", [
    ("Llama-3.1-70B", dict(tp=4, weight_dtype="fp8"), "gemm.fp8", "gemm"),
    ("Llama-3.1-70B", dict(tp=4), "comm.custom_allreduce", "comm_tp"),
    ("Llama-3.1-70B", dict(tp=4), "context_attention.bf16", "attention_prefill"),
    ("Llama-3.1-70B", dict(tp=4), "generation_attention.bf16", "attention_decode"),
    ("Qwen3-30B-A3B", dict(tp=2), "moe.bfloat16", "moe"),
])
def test_a_slower_kernel_table_moves_its_own_component_only(monkeypatch, model, kw, table, component):
    args = dict(gpu="H200", batch_size=64, input_len=2048, output_len=257, engine="vllm", **kw)
    before = inference.breakdown(model, **args)
    assert set(before["source"]) == {"interpolated"}
    slow_table(monkeypatch, table, 2.0)
    after = inference.breakdown(model, **args)
    moved = after[component] > 1.3 * before[component]
    # the phase that reads the table moves (attention tables: their own phase only)
    assert moved.any()
    others = [c for c in COMPONENTS if c != component]
    np.testing.assert_allclose(after[others].to_numpy(), before[others].to_numpy(), rtol=1e-9, atol=0)
    np.testing.assert_allclose(after["total_ms"], _totals(inference.estimate(model, **args)), rtol=1e-9)


def test_a_closed_form_factor_moves_its_own_component_only():
    eff = core.default_eff()
    slow = inference.efficiency.from_params({**eff.params, "overhead_step_ms": 10 * eff["overhead_step_ms"] + 1.0})
    args = dict(model="Llama-3.1-70B", gpu="H200", tp=4, batch_size=[1, 64], engine="roofline")
    a, b = inference.breakdown(**args), inference.breakdown(**args, efficiency=slow)
    assert (b["host_step"] > a["host_step"] + 0.9).all()
    others = [c for c in COMPONENTS if c != "host_step"]
    np.testing.assert_allclose(b[others].to_numpy(), a[others].to_numpy(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(input_len=-3), dict(model="No-Such-Model"),
                                 dict(gpu="H999"), dict(engine="nope"), dict(tp=0), dict(weight_dtype="fp7"),
                                 dict(batch_size=[1, 2], input_len=[1, 2, 3])])
def test_bad_input_raises_as_estimate_does(bad):
    args = {**dict(model="Llama-3.1-8B", gpu="H200"), **bad}
    with pytest.raises(Exception) as want:
        inference.estimate(**args)
    with pytest.raises(type(want.value)) as got:
        inference.breakdown(**args)
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize("engine", ["vllm", "roofline"])
def test_speculative_rows_split_the_draft_from_the_verify(engine):
    """With ``speculative`` the parts sum to `estimate`'s token-time TTFT / TPOT (pp 2 and attention DP too): the
    prompt's kernels as without it and the draft layer's prefill in ``draft_prefill``; the decode step's verify in
    the kernel columns and the k draft forwards in ``draft`` (`speculative.draft_s`, over E); without the knob both
    columns are 0."""
    from objectives.inference import Speculative, speculative
    from objectives.inference.breakdown import SPEC_TERMS
    spec = Speculative("mtp", 3, (0.8, 0.6, 0.4))
    cols = list(COMPONENTS + SPEC_TERMS)
    for kw in (dict(tp=8), dict(tp=4, pp=2), dict(tp=2, attn_dp=4, ep=8)):
        a = dict(batch_size=[1, 32], input_len=2000, output_len=300, engine=engine, **kw)
        est = inference.estimate("DeepSeek-V3", "H200", speculative=spec, **a)
        bd = inference.breakdown("DeepSeek-V3", "H200", speculative=spec, **a)
        np.testing.assert_allclose(bd[cols].to_numpy().sum(axis=1), _totals(est), rtol=1e-9, atol=0)
        np.testing.assert_allclose(bd["total_ms"], _totals(est), rtol=1e-9, atol=0)
        assert np.all(bd[cols].to_numpy() >= 0.0)
        pre, dec = bd[bd.phase == "prefill"], bd[bd.phase == "decode"]
        assert (pre["draft"] == 0).all() and (pre["draft_prefill"] > 0).all()
        assert (dec["draft"] > 0).all() and (dec["draft_prefill"] == 0).all()
        off = inference.breakdown("DeepSeek-V3", "H200", **a)
        assert (off[list(SPEC_TERMS)].to_numpy() == 0).all()
        off_pre = off[off.phase == "prefill"]
        np.testing.assert_allclose(pre[list(COMPONENTS)].to_numpy(), off_pre[list(COMPONENTS)].to_numpy(), rtol=1e-12)
    # the draft column is k draft forwards at the batch's rows (pp 1), over the expected tokens
    p = inference.StepModel("DeepSeek-V3", "H200", 8, engine=engine, speculative=spec)
    B, Kd = 32.0, 32.0 * (2000 + 150)
    draft = 1e3 * 3 * speculative.draft_s(p._c, p._L, B, Kd, scalar=True) / spec.expected_tokens
    one = inference.breakdown("DeepSeek-V3", "H200", tp=8, batch_size=32, input_len=2000, output_len=300,
                              engine=engine, speculative=spec)
    assert float(one["draft"].iloc[1]) == pytest.approx(draft, rel=1e-9)


def test_no_band_and_no_configuration():
    with pytest.raises(TypeError, match="interval"):
        inference.breakdown("Llama-3.1-8B", "H200", interval=0.8)
    empty = inference.breakdown("Llama-3.1-8B", "H200", batch_size=np.array([], dtype=int))
    assert len(empty) == 0 and {"row", "phase", "total_ms", *COMPONENTS, "draft", "draft_prefill", "model",
                                "source"} <= set(empty.columns)


def test_dse_breakdown_prints_each_phase_in_ms_and_percent(capsys):
    assert cli_main(["Qwen3-30B-A3B", "--gpu", "H200", "--tp", "2", "--batch-size", "32", "--input-len", "2048",
                     "--output-len", "256"]) == 0
    out = capsys.readouterr().out
    bd = inference.breakdown("Qwen3-30B-A3B", "H200", tp=2, batch_size=32, input_len=2048, output_len=256)
    lines = {ln.split()[0]: ln.replace(",", "").split() for ln in out.splitlines()[2:]}
    assert "moe" in lines and "comm_ep" not in lines   # components zero in both phases are left out
    assert float(lines["moe"][1]) == pytest.approx(bd["moe"].iloc[0], rel=1e-3)
    assert float(lines["moe"][3]) == pytest.approx(bd["moe"].iloc[1], rel=1e-3)
    assert float(lines["moe"][4]) == pytest.approx(100 * bd["moe"].iloc[1] / bd["total_ms"].iloc[1], abs=0.06)
    assert float(lines["total"][3]) == pytest.approx(bd["total_ms"].iloc[0], rel=1e-3)
    assert cli_main(["Llama-3.1-8B", "--gpu", "H999"]) == 2
    assert "unknown GPU 'H999'" in capsys.readouterr().err


def test_dse_breakdown_speculative_shows_the_draft_rows_without_served(capsys):
    """`dse breakdown --speculative LABEL` on a static batch: the draft layer's rows after the kernels', each the
    breakdown's, the totals estimate's token-time TTFT and TPOT; a model without an MTP module refused by name."""
    from objectives.inference import Speculative
    argv = ["DeepSeek-V3", "--gpu", "H200", "--tp", "8", "--batch-size", "32", "--speculative", "mtp:3:0.8,0.6,0.4"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "speculative mtp:3:0.8,0.6,0.4" in out.splitlines()[0]
    lines = {ln.split()[0]: ln.replace(",", "").split() for ln in out.splitlines()[2:]}
    assert list(lines)[-3:] == ["draft", "draft_prefill", "total"]
    bd = inference.breakdown("DeepSeek-V3", "H200", tp=8, batch_size=32, speculative=Speculative("mtp", 3, (0.8, 0.6, 0.4)))
    assert float(lines["draft"][3]) == pytest.approx(bd["draft"].iloc[1], rel=1e-3) and bd["draft"].iloc[1] > 0
    assert float(lines["draft_prefill"][1]) == pytest.approx(bd["draft_prefill"].iloc[0], rel=1e-3)
    est = inference.estimate("DeepSeek-V3", "H200", tp=8, batch_size=32, speculative="mtp:3:0.8,0.6,0.4")
    assert float(lines["total"][3]) == pytest.approx(est["ttft_ms"][0], rel=1e-3)
    assert float(lines["total"][5]) == pytest.approx(est["tpot_ms"][0], rel=1e-3)
    assert cli_main(["Llama-3.1-8B", "--gpu", "H200", "--speculative", "mtp:2:0.7"]) == 2
    assert "n_mtp_layers" in capsys.readouterr().err


def test_dse_breakdown_is_registered_as_a_domain_command(capsys):
    """`dse breakdown` hooks in as the other domain commands do (entry-point group dse.commands); the engine's CLI
    (dse/) knows nothing about GPUs."""
    from dse.cli import COMMANDS
    from dse.cli import main as dse_main

    assert "breakdown" not in COMMANDS
    assert dse_main(["breakdown", "Llama-3.1-8B", "--gpu", "H999"]) == 2
    assert "unknown GPU 'H999'" in capsys.readouterr().err


def test_a_request_beyond_the_models_context_is_noted(capsys):
    """`dse breakdown Llama-3.1-8B --input-len 200000` printed a 16.9 s prefill for a prompt past the model's
    131,072 positions, which every engine refuses, as if it were servable: a note says so (the objective's,
    `simulate`'s and `dse deploy`'s check, `serving.workload.context_refusal`), beside the times."""
    assert cli_main(["Llama-3.1-8B", "--gpu", "H100", "--input-len", "200000"]) == 0
    out = capsys.readouterr().out
    assert "note: the workload's longest request (200128 tokens of prompt and output) exceeds Llama-3.1-8B's " \
           "context of 131072 tokens (max_position_embeddings): engine 'vllm' refuses it (TensorRT-LLM serves " \
           "past it, inference.resolve.CONTEXT_PAST_ENGINES); give --input-len and --output-len within it; its " \
           "times are still shown" in out
    assert out.count("note:") == 1             # the row's own reason (R_CONTEXT) is that note, not a second one
    # TensorRT-LLM serves past the context (`resolve.context_invalid`): no note
    assert cli_main(["Llama-3.1-8B", "--gpu", "H100", "--input-len", "200000", "--engine", "trtllm"]) == 0
    assert "exceeds" not in capsys.readouterr().out
    assert cli_main(["Llama-3.1-8B", "--gpu", "H100", "--input-len", "130000"]) == 0
    assert "note:" not in capsys.readouterr().out


def test_deploy_usage_names_the_command_it_was_called_as(capsys):
    """`dse deploy --help` printed "usage: python -m objectives.deploy": each entry point names itself."""
    import subprocess
    import sys

    from dse.cli import main as dse_main
    with pytest.raises(SystemExit):
        dse_main(["deploy", "--help"])
    assert capsys.readouterr().out.startswith("usage: dse deploy ")
    r = subprocess.run([sys.executable, "-m", "objectives.deploy", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: python -m objectives.deploy ")
