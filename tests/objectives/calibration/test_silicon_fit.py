"""The silicon slice's engine-factor fit (objectives.calibration.silicon.fit_engine_factors)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from objectives.calibration import silicon
from objectives.inference.efficiency import Efficiency, default_efficiency


@pytest.fixture(scope="module")
def rows():
    try:
        r, _ = silicon.load_rows()
    except FileNotFoundError:
        pytest.skip("the silicon measurements (../shared/calibration) are not in this checkout")
    agg = r[r["mode"] == "agg"]
    # two deployments of each engine's main model: a vLLM and an SGLang model, no TensorRT-LLM row
    return agg[agg["engine"].str.lower().isin(["vllm", "sglang"])].groupby("engine").head(2)


def test_each_engine_fits_its_own_launch_floor_and_an_engine_without_rows_gets_their_mean(rows):
    base = default_efficiency()
    params = copy.deepcopy(dict(base.params))
    params["profile_launch_us"] = {**params["profile_launch_us"], "vllm": 1.0, "sglang": 4.0, "trtllm": 2.5}
    eff, info = silicon.fit_engine_factors(rows, Efficiency(params, base.meta), max_nfev=1)
    floor = eff.params["profile_launch_us"]
    # one factor per engine present: they start apart and stay apart (a shared factor would tie them)
    assert "profile_launch_us.vllm" in info["names"] and "profile_launch_us.sglang" in info["names"]
    assert floor["sglang"] > 2.0 * floor["vllm"]
    # TensorRT-LLM has no row here: the geometric mean of the fitted engines, not its starting value
    assert floor["trtllm"] == pytest.approx(np.sqrt(floor["vllm"] * floor["sglang"]), rel=1e-9)


def test_an_engine_without_rows_gets_the_fitted_engines_mean_front_end_time(rows):
    base = default_efficiency()
    assert base.params["engine_ttft_ms"]["trtllm"] == 0.0
    eff, _ = silicon.fit_engine_factors(rows, Efficiency(copy.deepcopy(dict(base.params)), base.meta), max_nfev=1)
    fe = eff.params["engine_ttft_ms"]
    # not its unfitted 0 ms (a claim that the engine has no front end), but the fitted engines' geometric mean
    assert fe["trtllm"] == pytest.approx(np.sqrt(fe["vllm"] * fe["sglang"]), rel=1e-9) and fe["trtllm"] > 0.1
