"""A calibrated profile file (`dse calibrate -o f.json`) names the factors it holds: the hash a study's version and
provenance carry is the hash of the factors the model runs with, so a file edited after `dse calibrate` wrote it (or
written by hand) is never taken for the one it was."""
from __future__ import annotations

import hashlib
import json

import pytest

from dse.evaluation import objective_info
from objectives import llm_serving_objective
from objectives.calibration.calibrate import factors_sha256, load_profile


def _write(p, factors, **extra):
    p.write_text(json.dumps({"format": "dse-calibrated-profile/1", "factors": factors, **extra}))
    return p


def test_the_hash_is_the_factors_and_follows_an_edit(tmp_path):
    factors = {"engine_ttft_ms.vllm": 12.5, "engine_step_ms.vllm": 0.4}
    want = hashlib.sha256(json.dumps(factors, sort_keys=True).encode()).hexdigest()
    assert factors_sha256(factors) == want
    p = _write(tmp_path / "cal.json", factors, sha256=want)
    assert load_profile(p).meta["sha256"] == want
    v0 = objective_info(llm_serving_objective("Llama-3.1-8B", profile=str(p)))["version"]
    # a factor edited by hand, the recorded hash left as it was: another model, another hash and version
    edited = dict(factors, **{"engine_ttft_ms.vllm": 40.0})
    _write(p, edited, sha256=want)
    assert load_profile(p).meta["sha256"] == factors_sha256(edited) != want
    v1 = objective_info(llm_serving_objective("Llama-3.1-8B", profile=str(p)))["version"]
    assert v1 != v0 and factors_sha256(edited)[:12] in v1


def test_profiles_without_a_recorded_hash_are_told_apart(tmp_path):
    a = _write(tmp_path / "a.json", {"engine_ttft_ms.vllm": 10.0})
    b = _write(tmp_path / "b.json", {"engine_ttft_ms.vllm": 20.0})
    va = objective_info(llm_serving_objective("Llama-3.1-8B", profile=str(a)))["version"]
    vb = objective_info(llm_serving_objective("Llama-3.1-8B", profile=str(b)))["version"]
    assert va != vb and "unhashed" not in va + vb
    # the same factors written as integers or floats are the same model
    c = _write(tmp_path / "c.json", {"engine_ttft_ms.vllm": 10})
    assert load_profile(c).meta["sha256"] == load_profile(a).meta["sha256"]


def test_the_check_says_which_metric_no_row_measures_instead_of_nan(tmp_path):
    """`dse calibrate --check` on static-batch tables (throughput and first-token latency, no TPOT): the headline
    says no row measures a TPOT, not "TPOT MdAPE nan %"."""
    from objectives.calibration.calibrate import check
    head = ("source_url,source_note,model,gpu,n_gpus,tp,pp,weight_dtype,act_dtype,kv_dtype,engine,batch_size,"
            "concurrency,input_len,output_len,metric,value,unit\n")
    note = '"static batching (gptSessionBenchmark); 1st-token latency table, batch size 1"'
    rows = [f"https://example.org/t,{note},Llama-3.1-8B,H100-SXM-80GB,1,1,1,fp8,fp8,,TensorRT-LLM 0.9.0,1,,{n},,"
            f"ttft_ms,{v},ms\n" for n, v in ((128, 9), (2048, 40))]
    p = tmp_path / "published.csv"
    p.write_text(head + "".join(rows))
    text, d = check([p])
    assert (d["not_predicted"] == "").sum() == 2
    headline = next(line for line in text.splitlines() if line.startswith("**All predicted rows"))
    assert "nan" not in headline and "TPOT: no row measures one" in headline, headline


def test_a_profile_fitted_without_tpot_rows_is_strict_json_and_says_so(tmp_path, capsys):
    """Static first-token tables measure no TPOT: the written profile holds null there (strict JSON, readable by
    any tool, not Python's NaN), and the command's summary says no row measures one."""
    from objectives.calibration.calibrate import main
    head = ("source_url,source_note,model,gpu,n_gpus,tp,pp,weight_dtype,act_dtype,kv_dtype,engine,batch_size,"
            "concurrency,input_len,output_len,metric,value,unit\n")
    note = '"static batching (gptSessionBenchmark); 1st-token latency table, batch size 1"'
    rows = [f"https://example.org/t,{note},Llama-3.1-8B,H100-SXM-80GB,1,1,1,fp8,fp8,,TensorRT-LLM 0.9.0,1,,{n},,"
            f"ttft_ms,{v},ms\n" for n, v in ((128, 9), (2048, 40), (512, 15))]
    p = tmp_path / "published.csv"
    p.write_text(head + "".join(rows))
    out = tmp_path / "cal.json"
    assert main([str(p), "-o", str(out), "--max-nfev", "2"]) == 0
    printed = capsys.readouterr().out
    assert "nan" not in printed.lower() and "TPOT: no row measures one" in printed, printed

    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")
    doc = json.loads(out.read_text(), parse_constant=refuse)
    assert doc["mdape_in_sample"]["tpot"] is None and doc["mdape_in_sample"]["ttft"] >= 0
    assert load_profile(out).meta["sha256"] == doc["sha256"]


def test_a_kernel_profile_or_an_empty_name_passed_as_profile_says_what_profile_takes(tmp_path):
    """`profile=` takes the calibrated factors `dse calibrate -o` writes; a measured kernel profile (.npz, chosen
    with `engine=`) and an empty string (read as the current folder) were reported as undecodable bytes or a
    directory."""
    import pytest

    from objectives import inference
    from objectives.profiles import DATA_DIR
    npz = next(DATA_DIR.glob("h100_sxm__vllm__*.npz"))
    with pytest.raises(ValueError) as e:
        inference.estimate(model="Llama-3.1-8B", gpu="H100", profile=str(npz))
    assert str(npz) in str(e.value) and "engine=" in str(e.value) and "codec" not in str(e.value)
    with pytest.raises(ValueError) as e:
        inference.estimate(model="Llama-3.1-8B", gpu="H100", profile="")
    assert "profile=''" in str(e.value) and "dse calibrate" in str(e.value)


@pytest.mark.parametrize("factors,expect", [
    ({"engine_step_ms.vlm": 0.4}, "unknown factor 'engine_step_ms.vlm'"),           # a misspelt engine
    ({"engine_step_ms.vllm.fast": 0.4}, "unknown factor 'engine_step_ms.vllm.fast'"),
    ({"engine_step_ms": 0.4}, "names a group of factors, not one: give engine_step_ms.vllm"),
    ({"engine_step_ms.vllm": float("inf")}, "is not a positive number"),
    ({"engine_step_ms.vllm": True}, "is not a positive number"),
])
def test_a_factor_nothing_reads_is_refused_by_name(tmp_path, factors, expect):
    p = tmp_path / "cal.json"
    p.write_text(json.dumps({"format": "dse-calibrated-profile/1", "factors": factors}))  # inf: JSON's Infinity
    with pytest.raises(ValueError, match=str(p)) as e:
        load_profile(p)
    assert expect in str(e.value)


def test_dse_calibrate_takes_debug_like_the_other_commands(tmp_path, capsys):
    """`dse --debug calibrate ...` hands --debug to the command (as to capacity, deploy, breakdown): calibrate had
    no such flag and stopped at "unrecognized arguments"; with it an error shows its traceback."""
    import pytest

    from objectives.calibration.calibrate import main
    missing = str(tmp_path / "missing.csv")
    assert main([missing, "--check"]) == 2 and "dse calibrate: error" in capsys.readouterr().err
    with pytest.raises((ValueError, OSError)):
        main([missing, "--check", "--debug"])
