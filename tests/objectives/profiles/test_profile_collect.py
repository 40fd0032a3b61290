"""The kernel-profile collector (objectives.profiles.collect) on CPU, tiny shapes: layout, schema, sanity, errors."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from objectives.profiles import collect as C
from tests.helpers import ROOT as REPO
from tests.helpers import needs_torch

pytestmark = needs_torch   # the collector times torch kernels (only test_system_names would run without it)


def _aic_table(op: str, engine: str, version: str, name: str) -> Path | None:
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "systems" / "data" / "h200_sxm" / op / engine / version
    p = p / f"{name}.parquet"
    return p if p.exists() else None


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("profile")
    written = C.collect(out, device="cpu", quick=True, system="test_cpu", ranks=[])
    return out, written


def test_quick_cpu_writes_the_aiconfigurator_layout(collected):
    out, written = collected
    import torch
    ver = str(torch.__version__)
    assert set(written) == {"gemm_perf", "context_attention_perf", "generation_attention_perf"}  # no comm: 1 device
    assert written["gemm_perf"] == out / "test_cpu" / "gemm" / "torch" / ver / "gemm_perf.parquet"
    assert written["context_attention_perf"].parent == out / "test_cpu" / "attention" / "torch" / ver
    assert not (out / "test_cpu" / "comm").exists()
    for op, tables in (("gemm", ["gemm_perf"]), ("attention", ["context_attention_perf",
                                                               "generation_attention_perf"])):
        meta = yaml.safe_load((out / "test_cpu" / op / "torch" / ver / "collection_meta.yaml").read_text())
        assert meta["schema_version"] == 1
        assert meta["runtime"]["framework"] == "torch" and meta["runtime"]["version"] == ver
        assert meta["timing"]["method"] == "perf_counter" and meta["timing"]["unit"] == "ms"
        assert sorted(meta["tables"]) == sorted(tables)
        for t in tables:
            assert meta["tables"][t]["rows"] == len(pd.read_parquet(written[t]))


@pytest.mark.parametrize("table,op,ver", [("gemm_perf", "gemm", "0.24.0"),
                                          ("context_attention_perf", "attention", "0.24.0"),
                                          ("generation_attention_perf", "attention", "0.24.0")])
def test_schema_matches_aiconfigurator_tables(collected, table, op, ver):
    _, written = collected
    mine = pq.read_schema(written[table])
    orig_path = _aic_table(op, "vllm", ver, table)
    expected = {"gemm_perf": C.GEMM_COLUMNS}.get(table, C.ATTN_COLUMNS)
    assert mine.names == expected
    if orig_path is None:
        pytest.skip("aiconfigurator-core not installed: column list checked, arrow types not compared")
    orig = pq.read_schema(orig_path)
    assert mine.names == orig.names
    assert [str(t) for t in mine.types] == [str(t) for t in orig.types]


def test_quick_grid_is_a_small_part_of_the_cpu_grid():
    """--quick stays seconds on CI by its work, not by a wall clock: a few tiny shapes."""
    quick, full = C.make_grid(True, "cpu"), C.make_grid(False, "cpu")

    def gemm_macs(g):   # multiply-adds of one pass over the GEMM grid
        return sum(g.gemm_m) * sum(g.gemm_n) * sum(g.gemm_k)

    assert len(quick.gemm_m) * len(quick.gemm_n) * len(quick.gemm_k) <= 64
    assert gemm_macs(quick) * 1000 < gemm_macs(full)
    assert quick.ctx_max_tokens * 8 <= full.ctx_max_tokens and quick.gen_max_tokens * 64 <= full.gen_max_tokens


def test_values_are_positive_finite_and_follow_the_conventions(collected):
    _, written = collected
    g = pd.read_parquet(written["gemm_perf"])
    grid = C.make_grid(True, "cpu")
    assert len(g) == 2 * len(grid.gemm_m) * len(grid.gemm_n) * len(grid.gemm_k)  # float32 and bfloat16 on CPU by default
    assert set(g["gemm_dtype"]) == {"float32", "bfloat16"} and set(g["op_name"]) == {"gemm"}
    for name in ("context_attention_perf", "generation_attention_perf"):
        df = pd.read_parquet(written[name])
        assert len(df) > 0
        lat = df["latency"].to_numpy(float)
        assert np.isfinite(lat).all() and (lat > 0).all()
    lat = g["latency"].to_numpy(float)
    assert np.isfinite(lat).all() and (lat > 0).all()
    ctx = pd.read_parquet(written["context_attention_perf"])
    assert (ctx["step"] == 0).all() and set(ctx["isl"]) <= set(grid.ctx_isl)
    assert set(ctx["op_name"]) == {"context_attention"}
    gen = pd.read_parquet(written["generation_attention_perf"])
    # aiconfigurator-core convention: one query token (isl=1) against `step` cached positions plus itself
    assert (gen["isl"] == 1).all() and set(gen["step"] + 1) == set(grid.gen_kv)
    assert (gen["num_heads"] == gen["num_key_value_heads"] * grid.gqa).all()
    assert (ctx["kv_cache_dtype"] == ctx["attn_dtype"]).all() and set(ctx["window_size"]) == {0}


def test_larger_work_is_not_faster(collected):
    _, written = collected
    g = pd.read_parquet(written["gemm_perf"])
    g = g[g["gemm_dtype"] == "float32"].assign(macs=lambda d: d["m"] * d["n"] * d["k"]).sort_values("macs")
    # 4,096x more multiply-adds: slower by far more than any noise
    assert g["latency"].iloc[-1] > g["latency"].iloc[0]
    # and as a whole: the third of the shapes with the most work is slower than the third with the least
    third = len(g) // 3
    assert g["latency"].iloc[-third:].median() > g["latency"].iloc[:third].median()
    ctx = pd.read_parquet(written["context_attention_perf"])
    ctx = ctx[ctx["attn_dtype"] == "float32"]
    small = ctx[(ctx["batch_size"] == 1) & (ctx["isl"] == 16) & (ctx["num_heads"] == 2)]["latency"].iloc[0]
    big = ctx[(ctx["batch_size"] == 2) & (ctx["isl"] == 256) & (ctx["num_heads"] == 4)]["latency"].iloc[0]
    assert big > small  # 512x the attention FLOPs


def test_allreduce_between_two_cpu_processes(tmp_path):
    written = C.collect(tmp_path, device="cpu", quick=True, system="test_cpu", ranks=[2], ops=["comm"],
                        dtypes="fp32")
    a = pd.read_parquet(written["custom_allreduce_perf"])
    assert list(a.columns) == C.ALLREDUCE_COLUMNS
    assert set(a["num_gpus"]) == {2} and list(a["message_size"]) == list(C.make_grid(True, "cpu").ar_sizes)
    assert set(a["op_name"]) == {"all_reduce"} and set(a["allreduce_dtype"]) == {"float32"}
    assert (a["latency"] > 0).all() and np.isfinite(a["latency"]).all()
    orig = _aic_table("comm", "vllm", "0.24.0", "custom_allreduce_perf")
    if orig is not None:
        o, m = pq.read_schema(orig), pq.read_schema(written["custom_allreduce_perf"])
        assert m.names == o.names and [str(t) for t in m.types] == [str(t) for t in o.types]


def test_single_device_writes_no_comm_table_and_says_why(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="objectives.profiles.collect"):
        written = C.collect(tmp_path, device="cpu", quick=True, ops=["comm"])
    assert written == {}
    assert not any(tmp_path.rglob("*.parquet"))
    assert "no comm table" in caplog.text and "one CPU device" in caplog.text


def test_unsupported_dtype_is_skipped_with_a_log_line(tmp_path, caplog):
    # fp8 attention has no SDPA path: logged, attention runs in the other requested dtype
    with caplog.at_level("WARNING", logger="objectives.profiles.collect"):
        written = C.collect(tmp_path, device="cpu", quick=True, dtypes="fp8,fp32", ops=["attention"], ranks=[])
    assert "fp8 attention" in caplog.text
    ctx = pd.read_parquet(written["context_attention_perf"])
    assert set(ctx["attn_dtype"]) == {"float32"}


@pytest.mark.parametrize("name,system", [
    ("NVIDIA H200", "h200_sxm"), ("NVIDIA H100 80GB HBM3", "h100_sxm"), ("NVIDIA H100 PCIe", "h100_pcie"),
    ("NVIDIA B200", "b200_sxm"), ("NVIDIA GB200", "gb200"), ("NVIDIA B300 SXM6 AC", "b300_sxm"),
    ("NVIDIA A100-SXM4-80GB", "a100_sxm"), ("NVIDIA A100-PCIE-40GB", "a100_pcie"), ("NVIDIA L40S", "l40s"),
    ("NVIDIA L4", "l4"), ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "rtx_pro_6000_server"),
    ("NVIDIA GeForce RTX 4090", "nvidia_geforce_rtx_4090"), ("AMD EPYC 9654 96-Core Processor",
                                                              "amd_epyc_9654_96_core_processor"),
])
def test_system_names(name, system):
    assert C.system_name(name) == system


@pytest.mark.parametrize("args,message", [
    (["--dtypes", "int3"], "unknown dtype 'int3'"),
    (["--dtypes", ","], "no dtype given"),
    (["--device", "tpu"], "valid values are 'cpu', 'cuda'"),
    (["--max-m", "0"], "--max-m must be a positive"),
    (["--ranks", "two"], "--ranks: expected comma-separated integers"),
    (["--engine", "My Engine"], "--engine 'My Engine'"),
    (["--system", "../x"], "--system '../x'"),
    (["--ops", "gemm,moe"], "unknown op(s) ['moe']"),
    (["--threads", "0"], "--threads must be a positive"),
])
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        C.main(["--out", str(tmp_path), "--device", "cpu", "--quick", *args] if "--device" not in args
               else ["--out", str(tmp_path), "--quick", *args])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.rglob("*.parquet"))


def test_cuda_request_without_cuda_is_an_error(tmp_path, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # so a machine with CUDA checks it too
    with pytest.raises(ValueError, match="CUDA is not available"):
        C.collect(tmp_path, device="cuda", quick=True)


def test_cli_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "objectives.profiles.collect", "--out", str(tmp_path), "--device",
                        "cpu", "--quick", "--dtypes", "fp32", "--ops", "gemm", "--max-m", "16", "--system", "cli"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    f = next((tmp_path / "cli" / "gemm" / "torch").glob("*/gemm_perf.parquet"))
    assert f"gemm_perf: {f}" in r.stdout
    g = pd.read_parquet(f)
    assert sorted(set(g["m"])) == [1, 4, 16] and set(g["gemm_dtype"]) == {"float32"}
    assert len(g) == 3 * 9


def test_a_shape_that_does_not_run_is_skipped_not_fatal(caplog):
    from functools import partial
    timer = C.Timer("cpu", warmup=1, repeats=3, inner=1)
    # 3 query heads cannot share 2 KV heads: torch refuses the shape
    bad = partial(C._attn_fn, 1, 4, 4, 3, 2, 128, "float32", True, "cpu")
    with caplog.at_level("WARNING", logger="objectives.profiles.collect"):
        assert C._measure(timer, bad, "context attention heads=3 kv_heads=2", "cpu") is None
    assert "context attention heads=3 kv_heads=2 skipped" in caplog.text
    good = partial(C._attn_fn, 1, 4, 4, 4, 2, 128, "float32", True, "cpu")
    lat = C._measure(timer, good, "ok", "cpu")
    assert lat is not None and lat > 0


def test_a_system_no_catalog_gpu_maps_to_is_said_at_the_start_naming_system_and_the_valid_names(tmp_path, caplog):
    """A CPU's system name (its model-name slug) maps to no catalog GPU, so its tables' profile costs nothing until
    collected with --system: the collector says so before it measures, naming --system and the valid names."""
    with caplog.at_level("WARNING", logger="objectives.profiles.collect"):
        C.collect(tmp_path, device="cpu", quick=True, ops=["comm"])
    first = caplog.records[0].getMessage()
    assert "a CPU" in first and "--system" in first and "h200_sxm (H200-SXM-141GB)" in first
    assert "no comm table" not in first and "no comm table" in caplog.text    # said first, before measuring
    caplog.clear()
    with caplog.at_level("WARNING", logger="objectives.profiles.collect"):
        C.collect(tmp_path, device="cpu", quick=True, ops=["comm"], system="h200_sxm")
    assert "--system" not in caplog.text
    # a GPU the catalog has no profile system for (an H100 PCIe) is told the same
    why = C.unusable_system(C.system_name("NVIDIA H100 PCIe"), "cuda:0", "NVIDIA H100 PCIe")
    assert why is not None and "'h100_pcie'" in why and "no catalog GPU maps to" in why
    assert C.unusable_system("b200_sxm", "cuda:0", "NVIDIA B200") is None
