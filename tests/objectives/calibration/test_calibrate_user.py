"""`dse calibrate` from a user's own results (issue 13 item 6), the way they come: a folder of `vllm bench serve
--save-result` files, the published-measurements layout, silicon and vLLM files in one call, and results the model
cannot use. Errors name the file, the row and the column or reason; a failed run writes nothing."""
from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from objectives.calibration.calibrate import check, fit
from objectives.calibration.measurements import read_measurements
from tests.helpers import DATA, SHARED

VLLM_DIR = DATA / "vllm_bench_serve"
VLLM_A = VLLM_DIR / "openai-infqps-concurrency4-Llama-3.1-8B-Instruct-20261203-120000.json"   # closed loop, C 4
VLLM_B = VLLM_DIR / "openai-2.0qps-Llama-3.1-8B-Instruct-20261203-121500.json"                # open loop, 2 req/s
SILICON = SHARED / "calibration" / "serving_silicon.csv"
PUBLISHED = SHARED / "calibration" / "published_measurements.csv"
needs_shared = pytest.mark.skipif(not SILICON.exists() or not PUBLISHED.exists(),
                                  reason="../shared/calibration is not in this checkout")
JSON_DEPLOYMENT = dict(gpu="h200_sxm", tp=1, weight_dtype="bf16")


def test_a_folder_of_results_is_fitted_and_each_file_read_is_recorded_with_its_hash(tmp_path):
    out = tmp_path / "cal.json"
    doc = fit([VLLM_DIR], out, max_nfev=2, **JSON_DEPLOYMENT)
    assert json.loads(out.read_text())["sha256"] == doc["sha256"]
    files = {e["file"]: e["sha256"] for e in doc["inputs"]}
    # the two results in the folder (not the .pytorch.json companion), each file's own bytes hashed
    assert set(files) == {str(VLLM_A), str(VLLM_B)}
    assert files[str(VLLM_A)] == hashlib.sha256(VLLM_A.read_bytes()).hexdigest()
    # the open-loop result cannot be predicted (no client concurrency): fitted on the other, and said so
    assert doc["rows"] == 1
    assert doc["skipped"] == {"no client concurrency (an offered request rate)": 1}


def test_results_the_model_cannot_use_name_file_row_and_reason_and_write_nothing(tmp_path):
    out = tmp_path / "cal.json"
    with pytest.raises(ValueError) as e:
        fit([VLLM_B], out, max_nfev=2, **JSON_DEPLOYMENT)
    msg = str(e.value)
    assert f"{VLLM_B}: row 1" in msg and "no client concurrency" in msg
    unknown = tmp_path / "unknown_model.json"
    unknown.write_text(json.dumps(dict(json.loads(VLLM_A.read_text()), model_id="acme/NotAModel-7B")))
    with pytest.raises(ValueError) as e:
        fit([unknown], out, max_nfev=2)
    msg = str(e.value)
    assert f"{unknown}: row 1" in msg and "model not in the catalog" in msg and "acme/NotAModel-7B" in msg
    assert not out.exists()
    # the profile never replaces a results file (refused before it is read: not a calibrated profile)
    mine = tmp_path / "mine.json"
    mine.write_text(VLLM_A.read_text())
    with pytest.raises(ValueError, match="already exists and is not a calibrated profile"):
        fit([mine], mine, max_nfev=2)
    assert mine.read_text() == VLLM_A.read_text()


@pytest.mark.parametrize("edit,column,expect", [
    ({"mean_ttft_ms": -5.0}, "mean_ttft_ms", "must be positive"),
    ({"mean_tpot_ms": 0.0}, "mean_tpot_ms", "must be positive"),       # every request had one output token
    ({"mean_tpot_ms": float("nan")}, "mean_tpot_ms", "must be positive"),
    ({"backend": "tgi", "endpoint_type": "tgi"}, "backend", "'tgi'"),  # another server: not vLLM's numbers
    ({"backend": "lmdeploy"}, "backend", "--metadata engine="),
])
def test_vllm_values_the_model_cannot_fit_name_file_row_and_key(tmp_path, edit, column, expect):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({**json.loads(VLLM_A.read_text()), **edit}))
    with pytest.raises(ValueError) as e:
        read_measurements(p)
    assert str(e.value).startswith(f"{p}: row 1, column {column!r}"), str(e.value)
    assert expect in str(e.value)


def test_an_engine_named_in_the_metadata_wins_over_the_client_backend(tmp_path):
    p = tmp_path / "sglang_server.json"
    p.write_text(json.dumps({**json.loads(VLLM_A.read_text()), "backend": "tgi", "engine": "sglang"}))
    assert read_measurements(p)["engine"].iloc[0] == "sglang"
    p.write_text(json.dumps({**json.loads(VLLM_A.read_text()), "backend": "openai-chat"}))
    assert read_measurements(p)["engine"].iloc[0] == "vllm"


@needs_shared
def test_silicon_and_vllm_files_in_one_call_with_the_json_deployment(tmp_path):
    small = tmp_path / "silicon.csv"
    rows = pd.read_csv(SILICON)
    rows[rows["model_path"] == "MiniMaxAI/MiniMax-M2.5"].head(6).to_csv(small, index=False)
    # the deployment flags fill the vLLM result; the silicon file records its own
    text, d = check([small, VLLM_B], **JSON_DEPLOYMENT)
    assert set(d["layout"]) == {"silicon", "vllm_json"}
    assert (d.loc[d["layout"] == "vllm_json", "gpu"] == "h200_sxm").all()
    # without any vLLM result the flags apply to nothing: said so, not silently dropped
    with pytest.raises(TypeError, match="apply to vLLM JSON results only"):
        check([small], **JSON_DEPLOYMENT)


@needs_shared
def test_cli_takes_the_published_layout_and_reports_bad_flags_without_a_traceback(tmp_path, capsys):
    from dse.cli import main

    small = tmp_path / "published.csv"
    raw = pd.read_csv(PUBLISHED, dtype=str, keep_default_na=False)
    raw[raw["metric"].isin(["ttft_ms", "itl_ms"])].head(8).to_csv(small, index=False)
    assert main(["calibrate", str(small), "--check", "--layout", "published"]) == 0
    assert "rows read" in capsys.readouterr().out
    assert main(["calibrate", str(small), "--check", "--gpu", "H200"]) == 2
    assert "apply to vLLM JSON results only" in capsys.readouterr().err


def test_rows_whose_deployment_does_not_fit_are_left_out_not_fitted_to_nan(tmp_path):
    """A result whose deployment the memory model cannot place (405B in bf16 on one GPU) has no prediction: a fit on
    it alone would write factors fitted to nothing (MdAPE nan); it is refused, naming the reason."""
    p = tmp_path / "big.json"
    p.write_text(json.dumps({**json.loads(VLLM_A.read_text()), "model_id": "meta-llama/Llama-3.1-405B",
                             "tp": "1", "weight_dtype": "bf16"}))
    # (the reason names vLLM's memory setting and that no setting makes room: `estimate._memory_reasons`)
    with pytest.raises(ValueError, match=r"does not fit: weights \+ KV cache \+ activations \+ runtime reserve "
                                         r"exceed GPU memory: .*gpu_memory_utilization gives its pool 0\.900 .*no "
                                         r"setting makes room.*: 1 row\(s\), the first .*big\.json: row 1 "):
        fit([p], tmp_path / "cal.json", max_nfev=2)
    assert not (tmp_path / "cal.json").exists()


@needs_shared
def test_the_published_layout_calibrates_from_static_batches_and_max_throughput_runs(tmp_path):
    """The published tables hold no closed loop of clients: static batches (`batch_size`: throughput and latency
    tables) and max-throughput runs (kind "ifb"). They are predicted as those (`inference.estimate`'s offline batch,
    `max_throughput` at the engine's budgets) and fitted on their output throughput where they give no TTFT and
    TPOT; a profile is written, scores better in sample than the shipped factors, and is usable."""
    from objectives import inference
    from objectives.calibration.silicon import predict

    raw = pd.read_csv(PUBLISHED, dtype=str, keep_default_na=False)
    keep = raw["model"].isin(["Llama-3.1-8B", "Llama-2-7B"]) & raw["gpu"].isin(["H100-SXM-80GB"])
    small = tmp_path / "published.csv"
    raw[keep].to_csv(small, index=False)
    rows = read_measurements(small, layout="published")
    static = rows[(rows["batch_size"] > 0) & rows["concurrency"].isna()].iloc[:1]
    assert len(static) == 1
    p = predict(static)
    r = inference.estimate(static["model"].iloc[0], static["gpu"].iloc[0], tp=static["tp"].iloc[0],
                           batch_size=static["batch_size"].iloc[0], input_len=static["isl"].iloc[0],
                           output_len=static["osl"].iloc[0], weight_dtype=static["weight_dtype"].iloc[0],
                           engine="trtllm")
    assert p["thr_gpu_pred"].iloc[0] == pytest.approx(r["throughput_tok_s_per_gpu"].iloc[0], rel=1e-9)

    before, _ = check([small])
    out = tmp_path / "cal.json"
    doc = fit([small], out, max_nfev=4)
    assert doc["rows"] > 20 and 0 < doc["mdape_in_sample"]["throughput"] < 100
    assert "no client concurrency (an offered request rate)" in doc["skipped"]   # the rows at a request rate
    shipped = float(before.split("throughput MdAPE ")[1].split(" %")[0])
    assert doc["mdape_in_sample"]["throughput"] <= shipped
    got = inference.estimate("Llama-3.1-8B", "H100", batch_size=64, input_len=1024, output_len=128,
                             engine="trtllm", profile=str(out))
    assert got["fits"].all() and (got["tpot_ms"] > 0).all()


def test_report_tables_print_counts_as_integers_beside_float_columns():
    from objectives.calibration.report import _md
    t = pd.DataFrame({"rows": [4, 274], "predicted": [4, 270], "MdAPE_%": [6.2, 13.0]},
                     index=pd.Index(["a", "b"], name="engine"))
    text = _md(t)
    assert "| a | 4 | 4 | 6.2 |" in text and "| b | 274 | 270 | 13.0 |" in text
    assert "4.0" not in text and "274.0" not in text


@needs_shared
def test_check_tables_print_row_counts_as_integers(tmp_path):
    small = tmp_path / "silicon.csv"
    rows = pd.read_csv(SILICON)
    rows[rows["model_path"] == "MiniMaxAI/MiniMax-M2.5"].head(6).to_csv(small, index=False)
    text, d = check([small])
    lines = text.splitlines()
    seen = 0
    for i, ln in enumerate(lines):
        if ln.startswith("|---"):                     # a table: its header above, its rows below
            head = [c.strip() for c in lines[i - 1].strip("|").split("|")]
            cols = [head.index(c) for c in ("rows", "predicted")]
            for row in lines[i + 1:]:
                if not row.startswith("| "):
                    break
                cells = [c.strip() for c in row.strip("|").split("|")]
                assert all(cells[j].isdigit() for j in cols), row
                seen += 1
    assert seen


@needs_shared
def test_outputs_never_replace_a_file_they_did_not_write(tmp_path, capsys):
    """`dse calibrate RESULTS -o studies/x.db` fitted for minutes, then wrote the profile over the study database;
    `--check --predictions results.csv` wrote the predictions over a measurements file. Both refuse such a path
    before reading anything (a folder too), naming it; a file they wrote themselves is replaced, as a rerun
    expects. Nothing is written on refusal."""
    from dse.cli import main

    small = tmp_path / "silicon.csv"
    pd.read_csv(SILICON, dtype=str, keep_default_na=False).head(6).to_csv(small, index=False)
    db = tmp_path / "study.db"
    db.write_bytes(b"SQLite format 3\x00" + bytes(100))
    before = small.read_bytes()
    for argv, flag, path in ((["-o", str(db)], "-o", db), (["-o", str(small)], "-o", small),
                             (["--check", "--predictions", str(small)], "--predictions", small),
                             (["-o", str(tmp_path)], "-o", tmp_path)):
        assert main(["calibrate", str(small), *argv]) == 2
        err = capsys.readouterr().err
        assert f"dse calibrate: error: {flag} {str(path)!r} " in err, err
        assert ("is a folder" if path == tmp_path else "already exists and is not a") in err, err
    assert small.read_bytes() == before and db.read_bytes()[:15] == b"SQLite format 3"
    preds = tmp_path / "preds.csv"
    for _ in range(2):                                # a rerun replaces its own predictions
        assert main(["calibrate", str(small), "--check", "--predictions", str(preds)]) == 0
        assert f"wrote {preds}" in capsys.readouterr().out
    assert {"ttft_pred", "tpot_pred"} <= set(pd.read_csv(preds).columns)
    prof = tmp_path / "mine.json"
    prof.write_text(json.dumps({"format": "dse-calibrated-profile/1", "factors": {}}))
    from objectives.calibration.calibrate import check_output
    check_output(prof, "-o")                          # a calibrated profile: a refit may replace it
    with pytest.raises(ValueError, match="already exists and is not a calibrated profile"):
        check_output(preds, "-o")


def test_cli_messages_name_its_flags_a_bad_gpu_the_catalogs_way_and_its_help_the_json_keys(tmp_path, capsys):
    # a result that does not say its GPU and TP: the flags that give them (the API's keywords too); a GPU the
    # catalog lacks: the catalog's error with its names, not rows left out unpredicted; --help lists the keys read
    from dse.cli import main
    from objectives.calibration.measurements import VLLM_OPTIONAL, VLLM_REQUIRED

    rec = {k: v for k, v in json.loads(VLLM_A.read_text()).items() if k not in ("gpu", "tp")}
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(rec))
    assert main(["calibrate", str(bare), "--check"]) == 2
    err = capsys.readouterr().err
    assert "give them to dse calibrate (--gpu ... --tp ...)" in err and "read_measurements (gpu=..., tp=...)" in err
    assert main(["calibrate", str(bare), "--check", "--gpu", "H999", "--tp", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown GPU 'H999'" in err and "H200-SXM-141GB" in err and "without a catalog GPU" not in err
    with pytest.raises(SystemExit):
        main(["calibrate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(k in out for k in (*VLLM_REQUIRED, *VLLM_OPTIONAL, "model_id", "--metadata", "tensor_parallel_size"))
