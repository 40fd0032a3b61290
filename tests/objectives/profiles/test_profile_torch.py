"""The GPU-collected `torch` profile: building it from collector output, using it as an engine, the whole-step
check (objectives.profiles.reference_step) and the GEMM cross-check against the engines' tables."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import spaces
from dse.errors import DSEError
from objectives import profiles
from objectives.inference import StepModel
from objectives.profiles import build, collect, crosscheck, reference_step
from objectives.profiles.profile import DATA_DIR
from tests.helpers import needs_torch

H200 = "H200-SXM-141GB"
COLLECTED = DATA_DIR / "collected"
STEPS = COLLECTED / "h200_sxm" / "reference_step" / "torch" / "2.11.0+cu130" / "llama-3.1-8b_steps.csv"


def test_the_h200_profile_collected_with_pytorch_is_an_engine():
    assert "torch" in profiles.available(H200)
    p = profiles.load(H200, "pytorch", full=False)  # alias
    assert p is not None and p.engine == "torch" and "objectives.profiles.collect" in p.source
    assert {"gemm.bf16", "gemm.fp8", "context_attention.bf16", "generation_attention.bf16"} <= set(p.tables)
    with pytest.raises(ValueError, match=r"no torch kernel profile for H100-SXM-80GB; available: .*vllm"):
        profiles.load("H100-SXM-80GB", "torch")
    sm = StepModel("Llama-3.1-8B", H200, engine="torch")
    assert sm.engine == "torch" and sm.source in ("interpolated", "extrapolated")
    assert sm.ttft_host_ms == 0.0  # no serving front end in a plain PyTorch step


def test_shipped_profile_is_what_the_collected_tables_build_to(tmp_path):
    done = build.build_all(COLLECTED, tmp_path, "test", engines=build.engines_in(COLLECTED))
    assert [p.key for p in done] == ["h200_sxm/torch/2.11.0+cu130"]
    shipped = profiles.read(DATA_DIR / done[0].filename)
    assert sorted(shipped.tables) == sorted(done[0].tables)
    for name, t in done[0].tables.items():
        np.testing.assert_allclose(shipped.tables[name].log_ms, t.log_ms, rtol=1e-6, err_msg=name)


@needs_torch
def test_build_from_collector_output_keeps_the_other_profiles_of_the_index(tmp_path):
    raw = tmp_path / "raw"
    collect.collect(raw, device="cpu", quick=True, system="test_cpu", engine="torch", version="9.9", ranks=[])
    out = tmp_path / "out"
    out.mkdir()
    keep = next(e for e in json.loads((DATA_DIR / "index.json").read_text())["profiles"] if e["engine"] == "vllm")
    shutil.copy(DATA_DIR / keep["file"], out / keep["file"])
    old_entry = {k: v for k, v in keep.items() if k != "source"}  # an index written before per-entry sources
    (out / "index.json").write_text(json.dumps({"source": "old single source", "profiles": [old_entry]}))
    done = build.build_all(raw, out, "my GPU", engines=build.engines_in(raw))
    assert build.engines_in(raw) == ("torch",) and len(done) == 1
    idx = json.loads((out / "index.json").read_text())["profiles"]
    by_key = {(e["system"], e["engine"], e["version"]): e for e in idx}
    assert by_key[(keep["system"], "vllm", keep["version"])]["source"] == "old single source"
    assert by_key[("test_cpu", "torch", "9.9")]["source"] == "my GPU"
    # the built table returns the measured latency at a measured shape
    g = pd.read_parquet(raw / "test_cpu" / "gemm" / "torch" / "9.9" / "gemm_perf.parquet")
    row = g[g["gemm_dtype"] == "float32"].iloc[5]
    t = done[0].table("gemm.fp32")
    assert t is not None
    got = float(t(float(row["m"]), float(row["n"]), float(row["k"])))
    best = g[(g["gemm_dtype"] == "float32") & (g["m"] == row["m"]) & (g["n"] == row["n"]) & (g["k"] == row["k"])]
    assert got == pytest.approx(float(best["latency"].min()), rel=1e-4)


@needs_torch
def test_a_collection_with_one_rank_count_builds_without_its_comm_table_and_says_why(tmp_path, caplog):
    """`collect --ranks 2` (gloo on CPU, or a box with two GPUs) measures all-reduce at one rank count: no curve over
    ranks can be made of it. The build keeps the GEMM and attention tables and drops that table with a log line
    naming the axis, instead of failing on it (it raised from `Table` and built nothing)."""
    raw = tmp_path / "raw"
    collect.collect(raw, device="cpu", quick=True, system="test_cpu", engine="torch", version="9.9", ranks=[2],
                    dtypes="fp32", ops=["gemm", "comm"])
    assert any(raw.rglob("custom_allreduce_perf.parquet"))
    with caplog.at_level("WARNING", logger="objectives.profiles.build"):
        done = build.build_all(raw, tmp_path / "out", "my CPU", engines=build.engines_in(raw))
    assert len(done) == 1 and "gemm.fp32" in done[0].tables
    assert "custom_allreduce" not in done[0].tables
    assert "one value only (num_gpus = 2)" in caplog.text


def test_model_composes_the_measured_h200_steps_from_the_collected_kernels():
    r = reference_step.compare(STEPS)
    assert set(r["engine"]) == {"torch"} and len(r) == 13
    dec, pre = r[r["phase"] == "decode"], r[r["phase"] == "prefill"]
    assert 0.9 <= dec["ratio"].median() <= 1.15, dec[["batch", "kv_len", "ratio"]]
    assert 0.9 <= pre["ratio"].median() <= 1.2, pre[["isl", "ratio"]]
    assert r["ratio"].between(0.8, 1.25).all(), r[["phase", "batch", "kv_len", "isl", "ratio"]]
    # the steps grow with batch and context as measured
    d4k = dec[dec["kv_len"] == 4096].sort_values("batch")
    assert np.all(np.diff(d4k["predicted_ms"]) > 0) and np.all(np.diff(d4k["latency_ms"]) > 0)


@needs_torch
def test_reference_step_measures_a_tiny_decoder_on_cpu(tmp_path):
    shape = {"name": "tiny", "n_layers": 2, "hidden": 64, "n_heads": 4, "n_kv_heads": 2, "head_dim": 16,
             "ffn": 128, "vocab": 256}
    f = tmp_path / "tiny.json"
    f.write_text(json.dumps(shape))
    df = reference_step.measure(str(f), device="cpu", quick=True)
    assert list(df.columns) == reference_step.COLUMNS
    assert sorted(set(df["phase"])) == ["decode", "prefill"] and (df["layers"] == 2).all()
    assert (df["latency_ms"] > 0).all() and np.isfinite(df["latency_ms"]).all()
    assert df.loc[df["phase"] == "decode", "tokens"].tolist() == df.loc[df["phase"] == "decode", "batch"].tolist()


@needs_torch
def test_reference_step_bad_input_names_what_is_wrong(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"name": "x", "hidden": 64}))
    with pytest.raises(ValueError, match=r"missing shape fields \['n_layers'"):
        reference_step.measure(str(f), device="cpu", quick=True)
    with pytest.raises(ValueError, match="dense full-attention decoders; Mixtral-8x7B has experts"):
        reference_step.measure("Mixtral-8x7B", device="cpu", quick=True)
    bad = tmp_path / "steps.csv"
    pd.read_csv(STEPS).drop(columns=["kv_len"]).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"missing columns \['kv_len'\]"):
        reference_step.compare(bad)


def test_crosscheck_finds_the_bf16_tables_agree_and_names_bad_input(tmp_path):
    r = crosscheck.gemm_ratios(COLLECTED, H200, "vllm")
    s = crosscheck.summary(r).set_index("dtype")
    assert set(s.index) == {"bfloat16", "fp8"} and (s["shapes"] == 2541).all()
    assert 0.9 <= s.loc["bfloat16", "median"] <= 1.1
    with pytest.raises(ValueError, match="no h200_sxm/gemm/<engine>/<version>/gemm_perf.parquet under"):
        crosscheck.gemm_ratios(tmp_path, H200, "vllm")
    with pytest.raises(ValueError, match="has no profiled system; valid: H100-SXM-80GB"):
        crosscheck.gemm_ratios(COLLECTED, "MI300X", "vllm")


def test_space_keeps_each_engine_on_the_gpus_it_can_be_costed_on():
    sp = spaces.llm_serving("Llama-3.1-8B", gpus=["H100-SXM-80GB", H200, "MI300X"], engines=["vllm", "torch"],
                            max_gpus=2)
    pts = sp.sample(1500, seed=0)
    pairs = set(zip(pts["engine"], pts["gpu"]))
    assert ("torch", "H100-SXM-80GB") not in pairs   # profiled GPU without a torch profile: every trial would fail
    assert {("torch", H200), ("torch", "MI300X"), ("vllm", "H100-SXM-80GB")} <= pairs  # MI300X: the roofline
    with pytest.raises(DSEError, match="'torch' has no kernel profile for any gpu of this space .*H200-SXM-141GB"):
        spaces.llm_serving("Llama-3.1-8B", gpus=["H100-SXM-80GB"], engines=["torch"])


def test_building_a_root_refuses_to_replace_a_profile_of_another_source_without_force(tmp_path):
    """`python -m objectives.profiles.build --root DIR` replaced a shipped profile of the same (system, engine,
    version) without a word: a user's own H200 collection under torch 2.11.0+cu130 would overwrite the shipped
    H200 torch profile. It refuses, naming the file and --force; the same --source (the project's own rebuild of
    the shipped torch profile) is a rebuild, and --force replaces."""
    shipped = next(e for e in json.loads((DATA_DIR / "index.json").read_text())["profiles"] if e["engine"] == "torch")
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(DATA_DIR / shipped["file"], out / shipped["file"])
    (out / "index.json").write_text(json.dumps({"profiles": [shipped]}))
    before = (out / shipped["file"]).read_bytes()
    mine = tmp_path / "mine"                      # the user's collection: the same system, engine and version
    shutil.copytree(COLLECTED, mine)
    with pytest.raises(SystemExit, match=r"refusing to replace 1 profile.*h200_sxm__torch__2\.11\.0\+cu130\.npz"
                                         r".*--force") as e:
        build.main(["--root", str(mine), "--out", str(out)])
    assert shipped["source"] in str(e.value)      # what it was built from
    assert (out / shipped["file"]).read_bytes() == before
    assert build.replaced(mine, out, shipped["source"], ("torch",)) == []
    # the project's own rebuild: the shipped raw tables with the shipped --source, byte-identical
    assert build.main(["--root", str(COLLECTED), "--out", str(out), "--source", shipped["source"]]) == 0
    assert (out / shipped["file"]).read_bytes() == before
    # a user's own rebuild of their own profile (same --root, so the same default source) needs no --force
    other = tmp_path / "other"
    assert build.main(["--root", str(mine), "--out", str(other)]) == 0
    assert build.main(["--root", str(mine), "--out", str(other)]) == 0
    # --force replaces
    assert build.main(["--root", str(mine), "--out", str(out), "--force"]) == 0
    idx = json.loads((out / "index.json").read_text())["profiles"]
    assert [e["source"] for e in idx] == [f"kernel tables under {mine}"]
