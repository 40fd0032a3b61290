"""`dse breakdown ... --profile my.json`: the split of a step under the user's calibrated factors (`dse calibrate
-o my.json`), as `inference.breakdown(..., profile=)` gives it; `dse breakdown` had no such flag."""
from __future__ import annotations

import json

from objectives import inference
from objectives.inference.cli import main


def test_the_breakdown_cli_takes_a_calibrated_profile(tmp_path, capsys):
    prof = tmp_path / "cal.json"
    prof.write_text(json.dumps({"format": "dse-calibrated-profile/1", "factors": {"engine_step_ms.vllm": 3.0}}))
    args = ["Llama-3.1-8B", "--gpu", "H100", "--batch-size", "8"]
    assert main(args) == 0
    base = capsys.readouterr().out
    assert main([*args, "--profile", str(prof)]) == 0
    mine = capsys.readouterr().out
    assert mine != base and f"the calibrated profile {prof}" in mine
    want = inference.breakdown("Llama-3.1-8B", "H100", batch_size=8, profile=str(prof))
    host = want.set_index("phase").loc["decode", "host_step"]
    assert f"{host:.3f}" in mine
    assert main([*args, "--profile", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
