"""benchmarks/flagship.py's front-gap table (issue 14: |analytical - simulated| / simulated on the confirmed front)
computed from what a study stores: a tiny confirmed study in SQLite, reopened, its front's screening values
(``<metric>_screen``, or an objective's own column beside ``<objective>_<label>``) against the checked ones."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

import dse
from dse.fidelity import Confirming, gaps_text, screening_gaps
from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import flagship as bench  # noqa: E402


@dse.vectorized
def _screen(df: pd.DataFrame) -> pd.DataFrame:
    x = df["x"].to_numpy(float)
    return pd.DataFrame({"y": x, "z": x, "lat": 10 * x, "mean": 5 * x})


@dse.vectorized
def _check(df: pd.DataFrame) -> pd.DataFrame:
    x = df["x"].to_numpy(float)
    return pd.DataFrame({"y": 0.5 * x, "z": x, "lat": 12 * x, "mean": 5 * x * (1 + x)})


def test_the_front_gap_table_reads_a_stored_confirmed_front(tmp_path):
    storage = f"sqlite:///{tmp_path / 'gaps.db'}"
    ev = Confirming(_screen, _check, {"y": "max", "z": "min"}, {"lat": ("<=", 7)}, label="slow", keep=("mean", "y"))
    s = dse.create_study("gaps", dse.Space(x=dse.Float(0, 1, step=0.1)), {"y": "max", "z": "min"},
                         constraints={"lat": ("<=", 7)}, storage=storage)
    s.optimize(ev, optimizer="grid", batch_size=11, progress=False)
    front = dse.load_study("gaps", storage=storage).pareto()
    # the check's lat = 12 x <= 7 keeps x <= 0.5 on the front (y = x against z = x: every such point a trade-off)
    assert sorted(np.round(front["x"].astype(float), 1)) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    g = screening_gaps(front, ["lat", "mean", "y", "absent"], "slow")
    # x = 0 checks to 0 and has no relative gap: 5 points. lat: |12 x - 10 x| / 12 x; mean (kept as mean_screen):
    # |5 x (1 + x) - 5 x| / 5 x (1 + x) = x / (1 + x); y, an objective that keeps its screening value (the checked
    # one in y_slow; kept too, so y_screen holds it again): |0.5 x - x| / 0.5 x
    assert g.loc["lat", "n"] == 5 and g.loc["lat", "median"] == pytest.approx(1 / 6)
    assert g.loc["mean", "median"] == pytest.approx(0.3 / 1.3) and g.loc["mean", "max"] == pytest.approx(0.5 / 1.5)
    assert g.loc["y", "median"] == pytest.approx(1.0) and g.loc["y", "max"] == pytest.approx(1.0)
    assert g.loc["absent", "n"] == 0 and np.isnan(g.loc["absent", "median"])
    assert bench.gap_table(g)[2:4] == ["| lat | 5 | 16.7 | 16.7 |", "| mean | 5 | 23.1 | 33.3 |"]
    assert gaps_text(g).startswith("lat 16.7 % (max 17 %), mean 23.1 % (max 33 %), y 100.0 % (max 100 %)")
    # rows only screened (fidelity "screen") never enter
    assert screening_gaps(front.assign(fidelity="screen"), ["lat"], "slow").loc["lat", "n"] == 0


def test_keep_must_name_metrics():
    with pytest.raises(dse.ObjectiveError, match="keep="):
        Confirming(_screen, _check, {"y": "max"}, {"lat": ("<=", 7)}, keep="mean")
