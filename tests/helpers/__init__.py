"""What the tests use that is not a test: study files and scripts run in subprocesses, the PostgreSQL fixture,
data files, and the paths below (so a test never counts its own depth in the tree)."""
from pathlib import Path

HELPERS = Path(__file__).resolve().parent
ROOT = HELPERS.parents[1]              # the repository (the checkout the tests run from)
SHARED = ROOT.parent / "shared"        # the shared data folder next to the repository
DATA = HELPERS / "data"                # small test fixtures (vLLM benchmark outputs)
