"""Serving-measurement readers (objectives.calibration.measurements): silicon CSV, vllm bench serve JSON, published CSV.

The vLLM fixtures in tests/helpers/data/vllm_bench_serve/ follow the writer in vllm/benchmarks/serve.py (`result_json`:
setup keys, `--metadata` entries as top-level strings, traffic keys, the benchmark result, per-metric mean/median/
std/p99; the `--save-detailed` arrays in one of them, and the `.pytorch.json` companion the writer saves next to each
result). Their numbers exercise the format only; they are not measurements of anything.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from objectives.calibration import measurements as M
from objectives.calibration.measurements import COLUMNS, read_measurements
from tests.helpers import DATA, SHARED

SHARED_CAL = SHARED / "calibration"
SILICON = SHARED_CAL / "serving_silicon.csv"
PUBLISHED = SHARED_CAL / "published_measurements.csv"
VLLM_DIR = DATA / "vllm_bench_serve"
VLLM_A = VLLM_DIR / "openai-infqps-concurrency4-Llama-3.1-8B-Instruct-20261203-120000.json"
VLLM_B = VLLM_DIR / "openai-2.0qps-Llama-3.1-8B-Instruct-20261203-121500.json"

needs_shared = pytest.mark.skipif(not SILICON.exists() or not PUBLISHED.exists(),
                                  reason="../shared/calibration is not in this checkout")


def _raw_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------------------- silicon


@pytest.fixture(scope="module")
def silicon() -> pd.DataFrame:
    return read_measurements(SILICON)


@needs_shared
def test_silicon_reads_every_row(silicon):
    s = silicon
    assert list(s.columns) == COLUMNS
    assert len(s) == 1223 and set(s["layout"]) == {"silicon"}
    assert list(s["source_row"]) == list(range(1, 1224))
    # counts computed from the file: mode x engine, systems, models
    assert s.groupby(["mode", "engine"]).size().to_dict() == {
        ("agg", "sglang"): 437, ("agg", "vllm"): 710, ("disagg", "trtllm"): 62, ("disagg", "vllm"): 14}
    assert s["gpu"].value_counts().to_dict() == {"b200_sxm": 689, "b300_sxm": 224, "h200_sxm": 204, "gb200": 76,
                                                 "h100_sxm": 30}
    assert s["model"].value_counts().to_dict() == {"MiniMaxAI/MiniMax-M2.5": 523, "Qwen/Qwen3.5-397B-A17B": 351,
                                                   "moonshotai/Kimi-K2.5": 241, "zhipuai/GLM-5": 108}
    # quantization: catalog dtype plus the scheme
    assert s["weight_dtype"].value_counts().to_dict() == {"fp8": 675, "fp4": 378, "int4": 90, "bf16": 80}
    assert s["moe_quant"].value_counts().to_dict() == {"nvfp4": 378, "fp8": 364, "fp8_block": 311, "int4_wo": 90,
                                                       "bf16": 80}
    assert (s.loc[s["moe_quant"] == "fp8_block", "moe_dtype"] == "fp8").all()
    assert (s.loc[s["weight_quant"] == "int4_wo", "weight_dtype"] == "int4").all()
    assert (s["ttft_ms"] > 0).all() and (s["tpot_ms"] > 0).all() and s["throughput_tok_s"].isna().all()


@needs_shared
def test_silicon_deployments_and_concurrency(silicon):
    s = silicon
    agg, dis = s[s["mode"] == "agg"], s[s["mode"] == "disagg"]
    # agg: batch_size is per attention-DP rank, the concurrency the whole deployment's; expert parallel spans it
    assert np.array_equal(agg["concurrency"], agg["batch_size"] * agg["attn_dp"])
    assert np.array_equal(agg["tp"] * agg["attn_dp"], agg["moe_tp"] * agg["moe_ep"])
    assert np.array_equal(agg["n_gpus"], agg["tp"] * agg["pp"] * agg["attn_dp"])
    assert agg[[c for c in COLUMNS if c.startswith(("prefill_", "decode_"))]].isna().all().all()
    assert dis[["tp", "pp", "attn_dp", "moe_tp", "moe_ep"]].isna().all().all()
    assert dis[["prefill_tp", "decode_tp", "prefill_moe_ep", "decode_moe_ep"]].notna().all().all()
    known = dis["prefill_workers"].notna()
    assert known.sum() == 29 and (~known).sum() == 47  # rows without worker counts keep NaN workers
    assert dis.loc[~known, "n_gpus"].isna().all()
    k = dis[known]
    assert np.array_equal(k["n_gpus"], k["prefill_workers"] * k["prefill_tp"] * k["prefill_attn_dp"]
                          + k["decode_workers"] * k["decode_tp"] * k["decode_attn_dp"])
    # every row against the raw file: the id's _c<N>_, the measured means, the system
    raw = _raw_rows(SILICON)
    for r in (0, 31, 79, 517, 1222):
        row = s.iloc[r]
        assert row["source_row"] == r + 1
        assert f"_c{int(row['concurrency'])}_" in raw[r]["id"]
        assert row["ttft_ms"] == float(raw[r]["silicon_ttft_ms"])
        assert row["tpot_ms"] == float(raw[r]["silicon_tpot_ms"])
        assert row["gpu"] == raw[r]["system"] and row["model"] == raw[r]["model_path"]
    # the second data row of the file: MiniMax-M2.5 on B300, vLLM 0.19.0, TP4, 1024/1024 at concurrency 128
    r1 = s.iloc[1]
    assert (r1["engine"], r1["engine_version"], r1["tp"], r1["isl"], r1["osl"], r1["concurrency"]) == \
        ("vllm", "0.19.0", 4.0, 1024.0, 1024.0, 128.0)


@needs_shared
def test_silicon_kv_cache_is_the_harness_fp8_for_fp8_and_nvfp4_checkpoints(silicon):
    """aiconfigurator launches fp8, fp8_block and nvfp4 checkpoints with an fp8 KV cache (its SDK's inference,
    written by its generator as --kv-cache-dtype), not the engines' "auto"; int4_wo and 16-bit rows state none (the
    cost model's default: 16 bits). The Hopper rows (H100, H200) state none either: they measure the engines' "auto"
    (`SILICON_AUTO_KV_FAMILIES`)."""
    s = silicon
    fp8 = s["moe_quant"].isin(M.SILICON_FP8_KV_QUANT)
    hopper = s["gpu"].isin(["h100_sxm", "h200_sxm"])
    assert (s.loc[fp8 & ~hopper, "kv_dtype"] == "fp8").all() and s.loc[~fp8 | hopper, "kv_dtype"].isna().all()
    assert fp8.sum() == 364 + 311 + 378 and (fp8 & hopper).sum() == 189 and (~fp8).sum() == 90 + 80


@needs_shared
def test_silicon_kv_cache_follows_the_rows_gpu_family(tmp_path):
    """The same fp8 row read on a Hopper system keeps the engine's "auto" cache (kv_dtype None), on Blackwell and
    on a family the rule does not name (Ampere) the harness's fp8; the system resolves as pricing resolves it
    (`catalog_gpus`: a kernel-table name, a catalog name or a device name), and one that resolves to no GPU keeps
    the fp8 rule."""
    def edit(d: pd.DataFrame) -> pd.DataFrame:
        d = d.iloc[:7].copy()
        assert (d["gemm_quant_mode"] == "fp8").all()
        d["system"] = ["h100_sxm", "h200_sxm", "b200_sxm", "a100_sxm", "my_cluster", "H100-SXM-80GB",
                       "NVIDIA H100 80GB HBM3"]
        return d
    s = read_measurements(_silicon_copy(tmp_path, edit), layout="silicon")
    assert s["kv_dtype"].isna().tolist() == [True, True, False, False, False, True, True]
    assert (s["kv_dtype"].iloc[2:5] == "fp8").all()


def _silicon_copy(tmp_path: Path, edit) -> Path:
    df = pd.read_csv(SILICON, dtype=str, keep_default_na=False)
    df = edit(df)
    p = tmp_path / "silicon_edit.csv"
    df.to_csv(p, index=False)
    return p


@needs_shared
def test_silicon_missing_column(tmp_path):
    p = _silicon_copy(tmp_path, lambda d: d.drop(columns=["silicon_tpot_ms", "prefill_tp_size"]))
    with pytest.raises(ValueError) as e:
        read_measurements(p, layout="silicon")
    msg = str(e.value)
    assert str(p) in msg and "silicon_tpot_ms" in msg


@needs_shared
@pytest.mark.parametrize("row,column,value,expect", [
    (5, "tp_size", "four", "'four' is not a number"),
    (7, "silicon_ttft_ms", "n/a", "'n/a' is not a number"),
    (3, "tp_size", "", "empty, a number is required"),          # an agg row needs its pool's TP
    (80, "decode_tp_size", "", "empty, a number is required"),  # a disagg row needs its pools' shape
    (2, "osl", "-5", "must be positive"),
    (7, "silicon_tpot_ms", "inf", "'inf' is not a finite number"),   # a measurement, not a number to score
    (3, "batch_size", "-4", "must be positive"),                    # an optional size: 0 is "not used", < 0 wrong
    (3, "moe_ep_size", "-2", "must be positive"),
    (80, "decode_num_workers", "0", "must be positive"),            # a disagg pool of no workers
    (9, "gemm_quant_mode", "fp6", "unknown quantization 'fp6'"),
    (4, "mode", "hybrid", "valid: 'agg', 'disagg'"),
    (6, "backend", "tgi", "unknown engine 'tgi'"),
])
def test_silicon_bad_cell_names_file_row_and_column(tmp_path, row, column, value, expect):
    def edit(d: pd.DataFrame) -> pd.DataFrame:
        d.loc[row - 1, column] = value
        return d
    p = _silicon_copy(tmp_path, edit)
    with pytest.raises(ValueError) as e:
        read_measurements(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: row {row}, column {column!r}"), msg
    assert expect in msg


@needs_shared
def test_silicon_row_without_concurrency(tmp_path):
    def edit(d: pd.DataFrame) -> pd.DataFrame:
        d.loc[9, "silicon_data_source"] = "db-dump"
        d.loc[9, "id"] = "no_concurrency_here"
        d.loc[9, "batch_size"] = ""  # an agg row's batch per rank would give it
        return d
    p = _silicon_copy(tmp_path, edit)
    with pytest.raises(ValueError, match=r"row 10, column 'silicon_data_source': no concurrency"):
        read_measurements(p)


# ---------------------------------------------------------------------------------------------------- vLLM JSON


def test_vllm_directory_with_metadata_and_defaults():
    v = read_measurements(VLLM_DIR, gpu="h200_sxm", tp=1, weight_dtype="bf16")
    assert list(v.columns) == COLUMNS
    assert len(v) == 2  # the .pytorch.json companion is not a result
    assert set(v["layout"]) == {"vllm_json"} and set(v["engine"]) == {"vllm"} and set(v["mode"]) == {"agg"}
    a = v[v["source_file"] == str(VLLM_A)].iloc[0]
    b = v[v["source_file"] == str(VLLM_B)].iloc[0]
    ja, jb = json.loads(VLLM_A.read_text()), json.loads(VLLM_B.read_text())
    # --metadata entries in the file win over the defaults; the defaults fill what a file does not say
    assert (a["gpu"], a["tp"], a["weight_dtype"], a["engine_version"]) == ("h100_sxm", 2.0, "fp8", "0.11.0")
    assert (b["gpu"], b["tp"], b["weight_dtype"]) == ("h200_sxm", 1.0, "bf16") and pd.isna(b["engine_version"])
    assert a["model"] == ja["model_id"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert a["ttft_ms"] == ja["mean_ttft_ms"] and a["tpot_ms"] == ja["mean_tpot_ms"]
    assert a["itl_ms"] == ja["mean_itl_ms"] and a["e2e_ms"] == ja["mean_e2el_ms"]
    assert a["throughput_tok_s"] == ja["output_throughput"]
    assert a["isl"] == np.mean(ja["input_lens"]) == 1024 and a["osl"] == np.mean(ja["output_lens"]) == 16
    assert a["concurrency"] == 4 and math.isinf(a["request_rate"]) and a["n_gpus"] == 2
    assert b["request_rate"] == 2.0 and np.isnan(b["concurrency"])  # open loop at 2 req/s, no cap
    assert b["isl"] == jb["total_input_tokens"] / jb["completed"] == 512
    assert b["ttft_ms"] == jb["mean_ttft_ms"] and b["note"] == jb["date"]


def test_vllm_missing_deployment_names_what_to_pass():
    with pytest.raises(ValueError) as e:
        read_measurements(VLLM_B)
    msg = str(e.value)
    assert str(VLLM_B) in msg and "column 'gpu'" in msg
    # (the weight format is the checkpoint's: a known model need not say it)
    assert "gpu=..., tp=..." in msg and "--metadata gpu=..." in msg


def test_vllm_append_result_file_and_unlimited_burst(tmp_path):
    a = json.loads(VLLM_A.read_text())
    burst = dict(a, max_concurrency=None, num_prompts=4, tp="4", label="burst")
    p = tmp_path / "appended.json"
    p.write_text(json.dumps(a) + "\n" + json.dumps(burst))  # what --append-result writes
    v = read_measurements(p)
    assert list(v["source_row"]) == [1, 2] and list(v["tp"]) == [2.0, 4.0]
    assert v["concurrency"].iloc[1] == 4  # request rate inf, no cap: every prompt in flight


def test_vllm_disaggregated_from_defaults():
    v = read_measurements(VLLM_B, gpu="gb200", tp=1, weight_dtype="nvfp4", mode="disagg", prefill_workers=2,
                          prefill_tp=4, decode_workers=1, decode_tp=8, decode_moe_ep=8, engine="trtllm")
    r = v.iloc[0]
    assert (r["mode"], r["engine"], r["weight_dtype"], r["weight_quant"]) == ("disagg", "trtllm", "fp4", "nvfp4")
    assert r["n_gpus"] == 2 * 4 + 1 * 8 and r["decode_moe_ep"] == 8 and r["prefill_moe_ep"] == 1
    assert np.isnan(r["tp"])


@pytest.mark.parametrize("edit,column,expect", [
    (lambda d: d.pop("mean_tpot_ms"), "mean_tpot_ms", "missing from the result"),
    (lambda d: d.update(mean_ttft_ms="fast"), "mean_ttft_ms", "'fast' is not a number"),
    (lambda d: d.update(completed=0), "completed", "no completed request"),
    (lambda d: d.update(tp="eight"), "tp", "'eight' is not a number"),
    (lambda d: d.update(weight_dtype="fp6"), "weight_dtype", "unknown quantization 'fp6'"),
])
def test_vllm_bad_values_name_file_record_and_key(tmp_path, edit, column, expect):
    d = json.loads(VLLM_A.read_text())
    edit(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ValueError) as e:
        read_measurements(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: row 1, column {column!r}"), msg
    assert expect in msg


def test_vllm_companion_and_broken_files(tmp_path):
    with pytest.raises(ValueError, match="pytorch.json"):
        read_measurements(VLLM_DIR / "openai-2.0qps-Llama-3.1-8B-Instruct-20261203-121500.pytorch.json",
                          gpu="h200_sxm", tp=1, weight_dtype="bf16")
    p = tmp_path / "cut.json"
    p.write_text(VLLM_A.read_text()[:200])
    with pytest.raises(ValueError, match=r"cut.json: record 1: not valid JSON"):
        read_measurements(p)
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(ValueError, match="no vllm bench serve result"):
        read_measurements(empty, layout="vllm_json")
    with pytest.raises(TypeError, match="unknown keyword"):
        read_measurements(VLLM_A, gpus="h100_sxm")


# ---------------------------------------------------------------------------------------------------- published


@needs_shared
def test_published_rows_grouped_per_deployment_and_load_point():
    p = read_measurements(PUBLISHED)
    assert list(p.columns) == COLUMNS and set(p["layout"]) == {"published"}
    raw = pd.read_csv(PUBLISHED)
    # 1,149 one-metric rows -> 970 (source, deployment, load point) rows, no metric lost
    assert len(raw) == 1149 and len(p) == 970
    metric_cols = ["ttft_ms", "itl_ms", "e2e_ms", "throughput_tok_s", "throughput_tok_s_gpu", "request_throughput"]
    assert int(p[metric_cols].notna().sum().sum()) == len(raw)
    assert p["tpot_ms"].equals(p["itl_ms"])
    assert p["kind"].value_counts().to_dict() == {"ifb": 669, "static": 114, "serving": 77, "ttft": 75,
                                                  "excluded": 22, "latency": 13}
    assert p["engine"].value_counts().to_dict() == {"trtllm": 938, "vllm": 25, "nim": 7}
    name = {"ttft_ms": "ttft_ms", "itl_ms": "itl_ms", "e2e_latency_ms": "e2e_ms",
            "throughput_out_tok_s": "throughput_tok_s", "throughput_out_tok_s_per_gpu": "throughput_tok_s_gpu",
            "requests_per_s": "request_throughput"}
    for r in (0, 100, 500, 969):
        row = p.iloc[r]
        first = raw.iloc[row["source_row"] - 1]
        assert row[name[first["metric"]]] == first["value"]
        assert row["model"] == first["model"] and row["gpu"] == first["gpu"]
    assert (p["mode"] == "agg").all() and set(p["request_rate"].dropna()) == {math.inf, 2.0, 8.0, 16.0}
    v = p[p["engine"] == "vllm"]["engine_version"]
    assert set(v) == {"0.5.4", "0.4.3+rocm614"}


@needs_shared
def test_published_bad_value_and_metric(tmp_path):
    df = pd.read_csv(PUBLISHED, dtype=str, keep_default_na=False)
    df.loc[11, "value"] = "12,5"
    p = tmp_path / "published_edit.csv"
    df.to_csv(p, index=False)
    with pytest.raises(ValueError, match=r"published_edit.csv: row 12, column 'value': '12,5' is not a number"):
        read_measurements(p)
    df = pd.read_csv(PUBLISHED, dtype=str, keep_default_na=False)
    df.loc[0, "metric"] = "tokens"
    df.to_csv(p, index=False)
    with pytest.raises(ValueError, match=r"row 1, column 'metric': 'tokens'; valid"):
        read_measurements(p, layout="published")


@needs_shared
def test_a_published_rows_engine_is_read_from_its_label_and_an_unknown_one_is_refused(tmp_path):
    """A user's own published-layout CSV names its engine in the label ("SGLang 0.5.9", "vllm 0.11.0"): every label
    that did not start with "vLLM" or hold "NIM" had been read as TensorRT-LLM, an unknown server's included."""
    df = pd.read_csv(PUBLISHED, dtype=str, keep_default_na=False).head(6)
    df.loc[0:1, "engine"] = "SGLang 0.5.9"
    df.loc[2:3, "engine"] = "vllm 0.11.0"
    p = tmp_path / "mine.csv"
    df.to_csv(p, index=False)
    r = read_measurements(p).sort_values("source_row")
    assert list(r["engine"]) == ["sglang", "sglang", "vllm", "vllm", "trtllm", "trtllm"]
    assert list(r["engine_version"])[:4] == ["0.5.9", "0.5.9", "0.11.0", "0.11.0"]
    df.loc[4, "engine"] = "FooServe 1.0"
    df.to_csv(p, index=False)
    with pytest.raises(ValueError, match=r"mine.csv: row 5, column 'engine': 'FooServe 1.0': unknown engine"):
        read_measurements(p)


# ---------------------------------------------------------------------------------------------------- layouts


def test_unknown_layout(tmp_path):
    with pytest.raises(ValueError, match=r"layout='trace': unknown; valid: \['silicon', 'vllm_json', 'published'\]"):
        read_measurements(VLLM_A, layout="trace")
    p = tmp_path / "other.csv"
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match=r"other.csv: row 0 \(header\): unknown layout"):
        read_measurements(p)
    with pytest.raises(FileNotFoundError):
        read_measurements(tmp_path / "missing.csv")


@needs_shared
@pytest.mark.parametrize("layout, drop", [("silicon", "silicon_tpot_ms"), ("silicon", "silicon_ttft_ms"),
                                          ("published", "source_url"), ("published", "metric")])
def test_a_file_of_a_layout_missing_one_of_its_marking_columns_names_that_column(tmp_path, layout, drop):
    """A silicon CSV without its TPOT column (or a published CSV without its source_url) is that layout missing a
    column: the error names the column, as `layout=` given does, not "unknown layout"."""
    src = SILICON if layout == "silicon" else PUBLISHED
    p = tmp_path / "mine.csv"
    pd.read_csv(src, dtype=str, nrows=5).drop(columns=[drop]).to_csv(p, index=False)
    assert M.detect_layout(p) == layout
    with pytest.raises(ValueError, match=rf"mine.csv: row 0 \(header\): missing column\(s\) \['{drop}'\]"):
        read_measurements(p)


@needs_shared
def test_detected_layouts_and_defaults_only_for_json(tmp_path):
    assert M.detect_layout(SILICON) == "silicon"
    assert M.detect_layout(PUBLISHED) == "published"
    assert M.detect_layout(VLLM_DIR) == "vllm_json"
    # a result saved without the .json suffix is still recognised by its content
    p = tmp_path / "result.txt"
    shutil.copy(VLLM_A, p)
    assert M.detect_layout(p) == "vllm_json" and len(read_measurements(p)) == 1
    with pytest.raises(TypeError, match="apply to vLLM JSON results only"):
        read_measurements(SILICON, gpu="h200_sxm")


def test_silicon_runs_exported_twice_count_once(silicon):
    from objectives.calibration.silicon import distinct_measurements

    rows = silicon.head(40).copy()
    copy = rows.iloc[[3, 7]].copy()
    copy["ttft_ms"] = copy["ttft_ms"] + 0.004          # a copy differs only in rounding
    copy["note"] = "another dump"
    copy["engine_version"] = copy["engine_version"].astype(str) + "-20260216-d3bae71e"  # and a longer release label
    other = rows.iloc[[5]].copy()
    other["ttft_ms"] = other["ttft_ms"] * 1.3          # a second run of the same deployment measured differently
    both = pd.concat([rows, copy, other], ignore_index=True)
    out = distinct_measurements(both)
    assert len(out) == len(distinct_measurements(rows)) + 1
    assert (out["ttft_ms"] == other["ttft_ms"].iloc[0]).any()


def test_a_run_exported_under_two_deployments_is_dropped_with_every_copy(silicon):
    from objectives.calibration.silicon import ambiguous_deployments, distinct_measurements

    rows = silicon.head(40).copy()
    relabelled = rows.iloc[[3]].copy()
    relabelled["tp"] = relabelled["tp"] * 4               # the same TTFT and TPOT under another deployment
    relabelled["ttft_ms"] = relabelled["ttft_ms"] + 0.004
    both = pd.concat([rows, relabelled], ignore_index=True)
    out = distinct_measurements(both)
    assert len(out) == len(distinct_measurements(rows)) - 1
    assert not (out["ttft_ms"].round(0) == round(rows["ttft_ms"].iloc[3])).any()
    amb = ambiguous_deployments(both)
    assert sorted(amb["tp"]) == sorted([rows["tp"].iloc[3], rows["tp"].iloc[3] * 4])


def _sweep(row: pd.Series, loads: list[float], tpot: list[float], **deployment: float) -> pd.DataFrame:
    """One deployment's closed-loop sweep built from a silicon row: `row` at each of `loads` clients with the
    given TPOT (ms), TTFT 10 x TPOT, relabelled with `deployment` (tp, attn_dp, moe_ep)."""
    out = pd.DataFrame([row] * len(loads)).reset_index(drop=True)
    return out.assign(concurrency=loads, tpot_ms=tpot, ttft_ms=[10.0 * t for t in tpot], **deployment)


def test_a_sweep_another_deployment_repeats_on_other_gpus_is_dropped(silicon):
    """Two deployments of one sweep on different numbers of GPUs whose decode steps agree within 2 % at every one of
    >= 3 shared loads are one run under two labels (the silicon file's attention-DP MiniMax-M2.5 rows): both are
    dropped. A real second deployment (TPOT 5 % off at one load), the same GPUs under another expert layout, or
    only two shared loads keep every row."""
    from objectives.calibration.silicon import ambiguous_deployments, distinct_measurements

    row = silicon[(silicon["mode"] == "agg") & (silicon["concurrency"] > 0)].iloc[0]
    loads, tpot = [4.0, 8.0, 16.0, 32.0], [10.0, 12.0, 15.0, 20.0]
    a = _sweep(row, loads, tpot, tp=2.0, attn_dp=1.0, moe_ep=2.0)
    other = _sweep(row, [8.0, 16.0, 32.0], [9.0, 11.0, 14.0], tp=4.0, attn_dp=1.0, moe_ep=1.0)

    def kept(b: pd.DataFrame) -> int:
        return len(distinct_measurements(pd.concat([a, b, other], ignore_index=True)))
    # TP 2 x attention DP 2 (4 GPUs) measuring TP 2's steps within 0.3-0.8 % and its TTFT 3 % off
    twin = _sweep(row, loads, [t * f for t, f in zip(tpot, (1.003, 0.995, 1.008, 1.0))], tp=2.0, attn_dp=2.0,
                  moe_ep=4.0).assign(ttft_ms=lambda d: d["ttft_ms"] * 1.03)
    assert kept(twin) == len(other)
    amb = ambiguous_deployments(pd.concat([a, twin, other], ignore_index=True))
    assert sorted(set(zip(amb["tp"], amb["attn_dp"]))) == [(2.0, 1.0), (2.0, 2.0)] and len(amb) == 8
    # one load 5 % apart: two deployments
    assert kept(twin.assign(tpot_ms=[t * f for t, f in zip(tpot, (1.003, 1.05, 1.0, 1.0))])) == 11
    # the same 2 GPUs with another expert layout may decode alike
    assert kept(twin.assign(attn_dp=1.0)) == 11
    # two shared loads do not make a sweep
    assert kept(twin.head(2)) == 9


def test_check_reads_vllm_results_with_a_catalog_gpu_name(capsys):
    """`dse calibrate results/ --check --gpu H200-SXM-141GB ...`: the catalog name works as the system name does;
    the closed-loop result is predicted, the open-loop one (2 req/s, no concurrency) is counted with its reason."""
    from dse.cli import main
    from objectives.calibration.calibrate import check

    text, d = check([VLLM_DIR], gpu="H200-SXM-141GB", tp=1, weight_dtype="bf16")
    a = d[d["source_file"] == str(VLLM_A)].iloc[0]
    b = d[d["source_file"] == str(VLLM_B)].iloc[0]
    assert a["not_predicted"] == "" and a["tpot_pred"] > 0 and a["source"] == "interpolated"
    assert b["not_predicted"] == "no client concurrency (an offered request rate)" and np.isnan(b["tpot_pred"])
    assert "**1 predicted (50.0 %)**" in text
    assert main(["calibrate", str(VLLM_DIR), "--check", "--gpu", "H200-SXM-141GB", "--tp", "1",
                 "--weight-dtype", "bf16"]) == 0
    assert "1 predicted (50.0 %)" in capsys.readouterr().out


def test_sglang_expert_parallel_labels_read_as_the_launch(silicon):
    """The slice labels an SGLang ``--tp T --ep E`` run tp = T x E, moe_tp = T (its TP 4 EP 4 and TP 8 EP 8 runs
    are exported so beside their (T, 1, E) copies): `launched_tp` reads such a label as T GPUs with expert TP
    T / E, so the two copies are one measurement and no longer dropped as ambiguous. Labels that already name
    the launch, attention-DP rows, expert TP alone and other engines keep theirs."""
    from objectives.calibration.silicon import distinct_measurements, launched_tp

    row = silicon[(silicon["mode"] == "agg") & (silicon["concurrency"] > 0)].iloc[0]
    labels = [("sglang", 4.0, 2.0, 2.0, 1.0), ("sglang", 16.0, 4.0, 4.0, 1.0), ("sglang", 4.0, 1.0, 4.0, 1.0),
              ("sglang", 4.0, 4.0, 1.0, 1.0), ("sglang", 8.0, 2.0, 4.0, 1.0), ("sglang", 4.0, 2.0, 4.0, 2.0),
              ("vllm", 4.0, 2.0, 2.0, 1.0)]
    rows = pd.DataFrame([row] * len(labels)).reset_index(drop=True)
    rows = rows.assign(engine=[e for e, *_ in labels], tp=[t for _, t, *_ in labels],
                       moe_tp=[m for *_, m, _, _ in labels], moe_ep=[e for *_, e, _ in labels],
                       attn_dp=[a for *_, a in labels], pp=1.0, concurrency=np.arange(len(labels)) + 1.0)
    rows["n_gpus"] = rows["tp"] * rows["attn_dp"]
    got = launched_tp(rows)
    assert got["tp"].tolist() == [2.0, 4.0, 4.0, 4.0, 8.0, 4.0, 4.0]
    assert got["moe_tp"].tolist() == [1.0, 1.0, 1.0, 4.0, 2.0, 2.0, 2.0]
    assert got["n_gpus"].tolist() == [2.0, 4.0, 4.0, 4.0, 8.0, 8.0, 4.0]
    assert rows["tp"].tolist()[:2] == [4.0, 16.0]     # the input frame is left as given
    # one run exported as (16, 4, 4) and as (4, 1, 4): dropped as ambiguous as labelled, one measurement as launched
    run = pd.DataFrame([row, row]).reset_index(drop=True).assign(engine="sglang", tp=[16.0, 4.0],
                                                                  moe_tp=[4.0, 1.0], moe_ep=4.0, attn_dp=1.0)
    assert len(distinct_measurements(run)) == 0
    once = distinct_measurements(launched_tp(run))
    assert len(once) == 1 and once["tp"].iloc[0] == 4.0 and once["moe_tp"].iloc[0] == 1.0


@needs_shared
def test_the_slice_holds_no_sglang_label_of_tp_times_ep():
    """As loaded (`silicon.load_rows`), no SGLang row keeps a tp = moe_tp x moe_ep label with both above 1, and
    the Qwen3.5 NVFP4 0.5.10.post1 expert-parallel sweep on B300 is the two-GPU ``--tp 2 --ep 2`` run."""
    from objectives.calibration import silicon as S

    rows, _ = S.load_rows()
    sg = rows[rows["engine"] == "sglang"]
    assert not ((sg["moe_tp"] > 1) & (sg["moe_ep"] > 1)).any()
    ep2 = sg[(sg["engine_version"] == "0.5.10.post1") & (sg["moe_ep"] == 2)]
    assert len(ep2) == 12 and set(ep2["tp"]) == {2.0} and set(ep2["n_gpus"]) == {2.0}


def test_vllm_attention_dp_labels_counting_t_squared_gpus_read_as_t_gpus(silicon):
    """The slice's vLLM "TP T, EP T, attention DP" rows are labelled tp T x attention DP T x EP T x T (vLLM's EP =
    TP x DP applied to T twice): `launched_tp` reads them as T GPUs, TP T x EP T (the batch the clients) for runs
    measured before `SILICON_VLLM_DP_SINCE`, attention DP T x TP 1 x EP T from then on and where no date is given.
    A vLLM label whose EP is TP x DP over the GPUs it names, SGLang rows and disaggregated pools keep theirs."""
    from objectives.calibration.silicon import SILICON_VLLM_DP_SINCE, distinct_measurements, launched_tp

    assert SILICON_VLLM_DP_SINCE == "2026-04-08"
    row = silicon[(silicon["mode"] == "agg") & (silicon["concurrency"] > 0)].iloc[0]
    old, new = "config_id=1; measured=2026-03-27T00:00:00.000Z", "config_id=2; measured=2026-04-21T00:00:00.000Z"
    # (engine, tp, attn_dp, moe_ep, note)
    labels = [("vllm", 4.0, 4.0, 16.0, old), ("vllm", 2.0, 2.0, 4.0, new), ("vllm", 4.0, 4.0, 16.0, ""),
              ("vllm", 1.0, 4.0, 4.0, old), ("vllm", 2.0, 2.0, 2.0, old), ("sglang", 4.0, 4.0, 16.0, old)]
    rows = pd.DataFrame([row] * len(labels)).reset_index(drop=True)
    rows = rows.assign(engine=[x[0] for x in labels], tp=[x[1] for x in labels], attn_dp=[x[2] for x in labels],
                       moe_ep=[x[3] for x in labels], note=[x[4] for x in labels], moe_tp=1.0, pp=1.0,
                       concurrency=64.0)
    rows["batch_size"] = rows["concurrency"] / rows["attn_dp"]
    rows["n_gpus"] = rows["tp"] * rows["attn_dp"]
    got = launched_tp(rows)
    assert got["tp"].tolist() == [4.0, 1.0, 1.0, 1.0, 2.0, 4.0]
    assert got["attn_dp"].tolist() == [1.0, 2.0, 4.0, 4.0, 2.0, 4.0]
    assert got["moe_ep"].tolist() == [4.0, 2.0, 4.0, 4.0, 2.0, 16.0]
    assert got["moe_tp"].tolist() == [1.0] * 6
    assert got["n_gpus"].tolist() == [4.0, 2.0, 4.0, 4.0, 4.0, 16.0]
    assert got["batch_size"].tolist() == [64.0, 32.0, 16.0, 16.0, 32.0, 16.0]
    assert rows["tp"].tolist()[:3] == [4.0, 2.0, 4.0] and rows["n_gpus"].iloc[0] == 16.0   # input left as given
    # one run exported as TP 4 x DP 4 x EP 16 (batch 16 a rank) and as TP 4 EP 4: ambiguous as labelled, once read
    run = pd.DataFrame([row, row]).reset_index(drop=True).assign(engine="vllm", tp=4.0, attn_dp=[4.0, 1.0],
                                                                  moe_ep=[16.0, 4.0], moe_tp=1.0, note=old)
    assert len(distinct_measurements(run)) == 0
    once = distinct_measurements(launched_tp(run))
    assert len(once) == 1 and (once["tp"].iloc[0], once["attn_dp"].iloc[0], once["moe_ep"].iloc[0]) == (4, 1, 4)


_EARLY, _LATE = "config_id=1; measured=2026-03-27T00:00:00.000Z", "config_id=2; measured=2026-04-21T00:00:00.000Z"


def _launch_labels(pp: float = 1.0, mode: str = "agg") -> pd.DataFrame:
    """SGLang ``--tp 4 --ep 2`` labelled (8, 4, 2); vLLM "TP 2, EP 2, attention DP" labelled TP 2 x DP 2 x EP 4,
    measured before and after `SILICON_VLLM_DP_SINCE`."""
    d = pd.DataFrame({"engine": ["sglang", "vllm", "vllm"], "mode": mode, "tp": [8.0, 2.0, 2.0],
                      "moe_tp": [4.0, 1.0, 1.0], "moe_ep": [2.0, 4.0, 4.0], "attn_dp": [1.0, 2.0, 2.0], "pp": pp,
                      "batch_size": [64.0, 32.0, 32.0], "concurrency": 64.0, "note": [_EARLY, _EARLY, _LATE]})
    return d.assign(n_gpus=d["tp"] * d["attn_dp"] * d["pp"])


#: (case, frame, expected columns after `launched_tp`; a column None: absent from the result)
_LAUNCH_CASES = [
    ("pp 2: n_gpus = T x pp on both branches", _launch_labels(pp=2.0),
     {"tp": [4.0, 2.0, 1.0], "moe_tp": [2.0, 1.0, 1.0], "moe_ep": [2.0, 2.0, 2.0], "attn_dp": [1.0, 1.0, 2.0],
      "batch_size": [64.0, 64.0, 32.0], "n_gpus": [8.0, 4.0, 4.0]}),
    ("no attn_dp column: no vLLM label counts T^2 GPUs", _launch_labels().drop(columns="attn_dp"),
     {"tp": [4.0, 2.0, 2.0], "moe_ep": [2.0, 4.0, 4.0], "attn_dp": None, "n_gpus": [4.0, 4.0, 4.0]}),
    ("no batch_size column", _launch_labels().drop(columns="batch_size"),
     {"tp": [4.0, 2.0, 1.0], "attn_dp": [1.0, 1.0, 2.0], "batch_size": None, "n_gpus": [4.0, 2.0, 2.0]}),
    ("no n_gpus column", _launch_labels().drop(columns="n_gpus"),
     {"tp": [4.0, 2.0, 1.0], "attn_dp": [1.0, 1.0, 2.0], "batch_size": [64.0, 64.0, 32.0], "n_gpus": None}),
    ("no note column: every vLLM run read as measured late", _launch_labels().drop(columns="note"),
     {"tp": [4.0, 1.0, 1.0], "attn_dp": [1.0, 2.0, 2.0], "batch_size": [64.0, 32.0, 32.0], "n_gpus": [4.0, 2.0, 2.0]}),
    ("disaggregated rows keep their labels", _launch_labels(mode="disagg"),
     {"tp": [8.0, 2.0, 2.0], "moe_tp": [4.0, 1.0, 1.0], "moe_ep": [2.0, 4.0, 4.0], "attn_dp": [1.0, 2.0, 2.0],
      "batch_size": [64.0, 32.0, 32.0], "n_gpus": [8.0, 4.0, 4.0]}),
]


@pytest.mark.parametrize(("case", "rows", "want"), _LAUNCH_CASES, ids=[c[0] for c in _LAUNCH_CASES])
def test_launched_tp_branches(case, rows, want):
    """`launched_tp` on hand-built frames: pipeline stages multiply the launched GPUs, a missing optional column
    is left missing (and a missing date reads as late), disaggregated pools are never relabelled."""
    got = M.launched_tp(rows)
    for col, v in want.items():
        if v is None:
            assert col not in got.columns, case
        else:
            assert got[col].tolist() == v, (case, col)


@needs_shared
def test_every_reader_of_a_silicon_file_sees_the_launched_layout():
    """`launched_tp` runs in `read_silicon`, so `dse calibrate`'s reader (`calibrate.read_results`) and
    `silicon.load_rows` see one layout: the file's T^2-GPU vLLM labels and SGLang tp = T x E labels are gone from
    both, and every row `load_rows` keeps carries the same layout in `read_results`."""
    from objectives.calibration import silicon as S
    from objectives.calibration.calibrate import read_results

    raw = pd.read_csv(SILICON, dtype=str, keep_default_na=False)
    num = {c: pd.to_numeric(raw[c], errors="coerce") for c in ("tp_size", "attention_dp_size", "moe_ep_size")}
    labelled = ((raw["backend"].str.lower() == "vllm") & (raw["mode"] == "agg") & (num["tp_size"] > 1)
                & (num["attention_dp_size"] == num["tp_size"]) & (num["moe_ep_size"] == num["tp_size"] ** 2))
    assert labelled.sum() > 0            # the file holds such labels, so the assertions below can fail
    rows = read_results([SILICON])
    v = rows[(rows["engine"] == "vllm") & (rows["mode"] == "agg")]
    assert not ((v["tp"] > 1) & (v["attn_dp"] == v["tp"]) & (v["moe_ep"] == v["tp"] ** 2)).any()
    assert (rows.loc[labelled.to_numpy(), "n_gpus"].to_numpy() == num["tp_size"][labelled].to_numpy()).all()
    sg = rows[(rows["engine"] == "sglang") & (rows["mode"] == "agg")]
    assert not ((sg["moe_tp"] > 1) & (sg["moe_ep"] > 1) & (sg["tp"] == sg["moe_tp"] * sg["moe_ep"])).any()
    loaded, _ = S.load_rows()
    layout = ["tp", "pp", "attn_dp", "moe_tp", "moe_ep", "n_gpus", "batch_size"]
    same = rows.set_index("source_row").loc[loaded["source_row"], layout].reset_index(drop=True)
    pd.testing.assert_frame_equal(same, loaded[layout].reset_index(drop=True))


@needs_shared
def test_the_slice_holds_no_vllm_label_of_t_squared_gpus():
    """As loaded, no vLLM row keeps the tp T x attention DP T x EP T x T label; the Kimi-K2.5 B200 0.17.0 runs that
    another export reports as TP 4 EP 4 count once (15 loads), and the MiniMax-M2.5 H100 8k / 1k sweep, labelled 16
    GPUs, queues at 32-64 clients as 4 GPUs' pool does (TTFT within 0.6-1.7x; as labelled 0.03-0.2x)."""
    from objectives.calibration import silicon as S

    rows, _ = S.load_rows()
    v = rows[rows["engine"] == "vllm"]
    assert not ((v["tp"] > 1) & (v["attn_dp"] == v["tp"]) & (v["moe_ep"] == v["tp"] ** 2)).any()
    kimi = v[v["model"].str.contains("Kimi") & (v["gpu"] == "b200_sxm") & (v["engine_version"] == "0.17.0")
             & (v["tp"] == 4) & (v["moe_ep"] == 4)]
    assert len(kimi) >= 25 and len(kimi[["isl", "osl", "concurrency"]].drop_duplicates()) == 15
    h100 = v[v["model"].str.contains("MiniMax") & (v["gpu"] == "h100_sxm") & (v["isl"] == 8192)
             & (v["concurrency"] >= 32) & (v["n_gpus"] == 4)]
    assert len(h100) >= 2
    p = S.predict(h100)
    ratio = (p["ttft_pred"] / h100["ttft_ms"]).to_numpy()
    assert ((ratio > 0.6) & (ratio < 1.7)).all()
