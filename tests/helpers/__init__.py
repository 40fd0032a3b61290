"""What the tests use that is not a test: study files and scripts run in subprocesses, the PostgreSQL fixture,
data files, and the paths below (so a test never counts its own depth in the tree)."""
import importlib.util
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
