"""`serving.capacity` and `dse capacity` take a calibrated profile (`dse calibrate -o FILE.json`), as estimate,
simulate and the objective do: its factors cost the analytical screen and every simulated rate, and the CLI says
which profile its figure comes from."""
from __future__ import annotations

import json

import pytest

from objectives import serving
from objectives.calibration.calibrate import load_profile
from objectives.serving.analytical import Deployments, ServingModel

SLO = {"ttft_ms": 400, "percentile": "p99"}
W = serving.Workload(rate=1.0, input_len=1024, output_len=64)
#: 256 sequences a replica (vLLM's own 1,024 reach saturation before the TTFT bound)
DEPLOY = dict(model="Llama-3.1-8B", gpu="H100", tp=1, weight_dtype="fp8", engine="vllm",
              scheduler=serving.Scheduler(max_batch_size=256, max_num_tokens=8192))


def _profile(tmp_path, ttft_ms: float = 150.0):
    p = tmp_path / "cal.json"
    p.write_text(json.dumps({"format": "dse-calibrated-profile/1", "factors": {"engine_ttft_ms.vllm": ttft_ms}}))
    return p


def test_capacity_is_costed_with_the_calibrated_profile(tmp_path):
    p = _profile(tmp_path)
    # p99 TTFT <= 250 ms (at 400 ms the replica's 256 sequences saturate before the bound, the profile or not)
    tight = {**SLO, "ttft_ms": 250}
    base = serving.capacity(**DEPLOY, slo=tight, workload=W, fidelity="analytical")
    cal = serving.capacity(**DEPLOY, slo=tight, workload=W, fidelity="analytical", profile=str(p))
    assert cal["capacity_req_s"] < base["capacity_req_s"]          # 150 ms more on every TTFT holds less
    # the analytical screen is the serving model with the profile's factors, as the objective builds it
    sm = ServingModel("Llama-3.1-8B", serving.Workload(rate=1.0, input_len=1024, output_len=64, n_requests=1000),
                      efficiency=load_profile(p))
    d = Deployments.of(gpu="H100", tp=1, weight_dtype="fp8", engine="vllm", max_batch_size=256, max_num_tokens=8192)
    assert cal["capacity_req_s"] == pytest.approx(float(sm.capacity(d, serving.SLO.parse(tight), tol=0.05)[0]))
    assert cal["profile"]["sha256"] == load_profile(p).meta["sha256"] and base["profile"] is None


def test_simulated_capacity_runs_every_rate_with_the_profile(tmp_path):
    p = _profile(tmp_path, 300.0)     # TTFT at least 300 ms of 400: far less rate holds
    # 3 x the ~90 in its batches, x 4: after the thirty-fifth round's refit a run of 600 at 49.7 req/s still filled
    # its batches over its steady part, and capacity asks for 1,200 (a refusal, not a number, at fewer)
    kw = dict(DEPLOY, slo=SLO, workload=W, n_requests=1200, tol=0.25)
    base = serving.capacity(**kw)
    cal = serving.capacity(**kw, profile=str(p))
    assert cal["capacity_req_s"] < base["capacity_req_s"]
    assert cal["metrics"]["ttft_ms_p50"] >= 300.0


def test_a_bad_profile_is_named_before_any_search(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a calibrated profile"):
        serving.capacity(**DEPLOY, slo=SLO, workload=W, profile=str(bad))


def test_cli_takes_a_profile_and_prints_it(tmp_path, capsys):
    from objectives.serving.cli import main
    p = _profile(tmp_path)
    assert main(["Llama-3.1-8B", "--gpu", "H100", "--weight-dtype", "fp8", "--engine", "vllm", "--ttft-ms", "400",
                 "--analytical", "--profile", str(p)]) == 0
    out = capsys.readouterr().out
    assert f"engine factors of the calibrated profile {p}" in out
    assert main(["Llama-3.1-8B", "--gpu", "H100", "--ttft-ms", "400", "--analytical", "--profile",
                 str(tmp_path / "missing.json")]) == 2
    # named as missing, not as a JSON parse of nothing ("[Errno 2] No such file or directory")
    assert f"error: profile file {str(tmp_path / 'missing.json')!r} does not exist: give the calibrated profile " \
           f"file `dse calibrate RESULTS -o FILE.json` wrote" in capsys.readouterr().err


def test_cli_smallest_deployment_takes_the_profile_to_the_objective(tmp_path, capsys):
    from objectives.serving.cli import main
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["Llama-3.1-8B", "--target-rate", "1", "--gpus", "H100", "--max-gpus", "1", "--ttft-ms", "400",
                 "--profile", str(bad)]) == 2
    assert "bad.json: not a calibrated profile" in capsys.readouterr().err


def test_smallest_deployment_screens_with_the_objectives_profile(tmp_path):
    import spaces
    from objectives import llm_serving_objective
    from objectives.serving.capacity import smallest_deployment
    # formats with vLLM kernel tables of their own on the H100 (int8 w8a8 borrows the fp8 one)
    space = spaces.llm_serving("Llama-3.1-8B", ["H100"], max_gpus=1, formats=["bf16", "fp8"],
                               max_batch_sizes=(64,), max_num_tokens=(8192,))
    slow = tmp_path / "slow.json"      # 5 s more on every TTFT, on every engine
    slow.write_text(json.dumps({"format": "dse-calibrated-profile/1",
                                "factors": {f"engine_ttft_ms.{e}": 5000.0 for e in ("vllm", "sglang", "trtllm")}}))
    w = serving.Workload(rate=1.0, input_len=1024, output_len=64, n_requests=60)
    obj = llm_serving_objective("Llama-3.1-8B", workload=w, slo={"ttft_ms_p99": 2000}, n_requests=60,
                                profile=str(slow))
    with pytest.raises(ValueError, match="no configuration of the space meets"):
        smallest_deployment(space, obj, 0.5)
