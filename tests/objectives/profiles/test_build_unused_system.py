"""`python -m objectives.profiles.build --root DIR` of tables collected under a system no catalog GPU maps to (a
CPU's slug, an unlisted GPU's name) wrote a profile the model never reads, and said only "1 profiles written":
it now names each such profile, why no GPU uses it and the system names that are used."""
from __future__ import annotations

import pytest

from objectives.profiles import build, collect
from tests.helpers import needs_torch


@needs_torch
@pytest.mark.parametrize("system,unused", [("amd_epyc", True), ("l40s", False)])
def test_a_profile_no_gpu_reads_is_named_at_build(tmp_path, capsys, system, unused):
    raw = tmp_path / "raw"
    assert collect.main(["--out", str(raw), "--device", "cpu", "--quick", "--dtypes", "fp32", "--ops", "gemm",
                         "--max-m", "16", "--system", system, "--version", "mine"]) == 0
    capsys.readouterr()
    assert build.main(["--root", str(raw), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr()
    assert "1 profiles written" in out.out
    said = f"{system}/torch/mine" in out.err and "no catalog GPU" in out.err and "h100_sxm" in out.err
    assert said == unused, out.err


def test_a_root_that_is_not_a_folder_is_named(tmp_path):
    """`build --root typo` said "no kernel tables: install the profiles extra ... or pass --root" to a user who
    had passed --root: the folder given is named instead."""
    with pytest.raises(SystemExit) as e:
        build.main(["--root", str(tmp_path / "typo"), "--out", str(tmp_path / "out")])
    assert str(e.value).startswith(f"--root {str(tmp_path / 'typo')!r} is not a folder: give the folder a collector "
                                   f"wrote")
    assert not (tmp_path / "out").exists()
