"""A fresh process's imports: the cost model's packages load scipy's heavy modules on first use, not at import
(scipy.special and what it loads cost ~0.1 s of CPU, scipy.stats ~0.5 s; docs/profiles.md, thirty-sixth round)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT


def _loaded_after(module: str) -> set[str]:
    """The scipy modules a fresh interpreter holds after importing `module`."""
    code = f"import sys, {module}; print(' '.join(sorted(m for m in sys.modules if m.startswith('scipy'))))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(("module", "absent"), [("objectives.inference", "scipy"),
                                                ("objectives.serving", "scipy.stats")])
def test_importing_the_cost_model_leaves_scipy_for_later(module, absent):
    loaded = _loaded_after(module)
    assert not {m for m in loaded if m == absent or m.startswith(absent + ".")}, sorted(loaded)[:5]
