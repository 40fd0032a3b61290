"""What the tests use that is not a test: study files and scripts run in subprocesses, the PostgreSQL fixture,
data files, and the paths below (so a test never counts its own depth in the tree)."""
import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parent
ROOT = HELPERS.parents[1]              # the repository (the checkout the tests run from)
SHARED = ROOT.parent / "shared"        # the shared data folder next to the repository
DATA = HELPERS / "data"                # small test fixtures (vLLM benchmark outputs)


def installed(module: str) -> bool:
    """Whether `module` can be imported here (found on the path; a blocked or broken finder counts as absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


#: for tests of code that needs torch: the `gp` extra (Optuna's GPSampler), the kernel-profile collector and the
#: reference step. CI installs it (`pip install -e ".[test,gp]"`); elsewhere these tests skip and say why.
TORCH_MISSING = "needs torch, the `gp` extra (pip install -e '.[gp]'), which is not installed"
needs_torch = pytest.mark.skipif(not installed("torch"), reason=TORCH_MISSING)


def studies_state() -> dict[str, tuple[int, int]]:
    """Every file under the repository's studies/ (but the study definitions) -> (size, mtime in ns)."""
    return {str(p.relative_to(ROOT)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in (ROOT / "studies").rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts}


def run_command(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`args` run in `cwd` (unbuffered Python output), their output captured as text; 300 s at most (a hang guard)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@dataclasses.dataclass(frozen=True)
class FlagshipRun:
    """One run of the flagship study through the CLI (the `flagship_run` fixture): `dse run` on a copy of
    studies/llm_serving.py (`study_file`, in `folder`, where the CLI writes its report), stored in `db`; `result`
    the finished process; `studies_before` / `studies_after`: `studies_state()` around it."""

    folder: Path
    study_file: Path
    db: Path
    result: subprocess.CompletedProcess
    studies_before: dict[str, tuple[int, int]]
    studies_after: dict[str, tuple[int, int]]


def run_flagship(folder: Path) -> FlagshipRun:
    """`dse run` of the flagship study in a subprocess, on a copy of its file in `folder` and into a SQLite file there."""
    study_file = folder / "llm_serving.py"
    shutil.copy(ROOT / "studies" / "llm_serving.py", study_file)
    db = folder / "flagship.db"
    dse_bin = Path(sys.executable).parent / "dse"
    before = studies_state()
    r = run_command([str(dse_bin), "run", str(study_file), "--storage", f"sqlite:///{db}", "--no-progress"], folder)
    return FlagshipRun(folder, study_file, db, r, before, studies_state())
