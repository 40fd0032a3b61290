"""What an engine's factors are where a fit has no rows of it: TensorRT-LLM's fused-MoE scale from its own kernel
tables' two lanes (`profiles.build.opt_in_moe_ratio`, `efficiency.MOE_SCALE_PRIOR`)."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from objectives.calibration import silicon
from objectives.inference.efficiency import MOE_SCALE_PRIOR, Efficiency, default_efficiency
from objectives.profiles import build

T = np.array([1.0, 8.0, 64.0, 1024.0])


def _lane(kernel: str, lat: np.ndarray, ep: int = 4, dist: str = "power_law_1.01",
          dtype: str = "nvfp4") -> pd.DataFrame:
    return pd.DataFrame({"moe_dtype": dtype, "kernel_source": kernel, "hidden_size": 7168, "inter_size": 2048,
                         "topk": 8, "num_experts": 256, "moe_tp_size": 1, "moe_ep_size": ep, "num_tokens": T,
                         "distribution": dist, "latency": lat})


def test_the_opt_in_lane_ratio_is_the_median_over_the_cells_both_lanes_time():
    cut = np.array([0.04, 0.08, 0.2, 1.0])
    ml = cut * np.array([0.4, 0.5, 0.6, 0.9])
    frame = pd.concat([
        _lane("moe_torch_flow_cutlass", cut), _lane("moe_torch_flow_min_latency", ml),
        # a shape only the default lane times, another routing and another format: not paired, not counted
        _lane("moe_torch_flow_cutlass", cut, ep=8),
        _lane("moe_torch_flow_cutlass", cut, dist="balanced"), _lane("moe_torch_flow_min_latency", cut * 2.0,
                                                                    dist="balanced"),
        _lane("moe_torch_flow_cutlass", cut, dtype="fp8"), _lane("moe_torch_flow_min_latency", cut * 3.0,
                                                                dtype="fp8")], ignore_index=True)
    assert build.opt_in_moe_ratio([frame]) == pytest.approx(0.55)
    # two tables pool their cells (0.3 x 4 beside 0.4, 0.5, 0.6, 0.9)
    assert build.opt_in_moe_ratio([frame, _lane("moe_torch_flow_cutlass", cut, ep=2)
                                   .pipe(lambda d: pd.concat([d, _lane("moe_torch_flow_min_latency", cut * 0.3,
                                                                       ep=2)]))]) == pytest.approx(0.35)


def test_the_opt_in_lane_ratio_refuses_what_it_cannot_pair():
    with pytest.raises(ValueError, match="engine='vllm'.*trtllm"):
        build.opt_in_moe_ratio([_lane("moe_torch_flow_cutlass", T)], engine="vllm")
    with pytest.raises(ValueError, match="no cell"):
        build.opt_in_moe_ratio([_lane("moe_torch_flow_cutlass", T)])


def test_tensorrt_llms_unfitted_moe_scale_is_its_tables_trtllm_gen_over_cutlass():
    """Without rows of its own (a fold that holds out its one model), TensorRT-LLM's in-engine NVFP4 MoE is its
    CUTLASS table times the ratio its own GB200 / B200 tables give the engine's other NVFP4 kernel (TRTLLM-gen, the
    min-latency lane) over CUTLASS, not 1.0."""
    assert default_efficiency().params["profile_moe_scale"]["trtllm"] == MOE_SCALE_PRIOR["trtllm"]
    assert 0.4 < MOE_SCALE_PRIOR["trtllm"] < 1.0
    assert all(default_efficiency().params["profile_moe_scale"][e] == 1.0 for e in ("vllm", "sglang"))
    root = build.aiconfigurator_root()
    if root is None:
        pytest.skip("aiconfigurator-core (the kernel tables) is not installed")
    paths = sorted(p for s in build.MOE_SCALE_PRIOR_SYSTEMS for p in (root / s / "moe" / "trtllm").glob(
        "*/moe_perf.parquet"))
    if not paths:
        pytest.skip("no TensorRT-LLM fused-MoE tables of those systems in this aiconfigurator-core")
    assert build.opt_in_moe_ratio(paths) == pytest.approx(MOE_SCALE_PRIOR["trtllm"], abs=0.01)


def test_a_fit_without_tensorrt_llm_rows_keeps_its_moe_scale_prior():
    try:
        r, _ = silicon.load_rows()
    except FileNotFoundError:
        pytest.skip("the silicon measurements (../shared/calibration) are not in this checkout")
    rows = r[(r["mode"] == "agg") & r["engine"].str.lower().isin(["vllm", "sglang"])].groupby("engine").head(2)
    base = default_efficiency()
    eff, info = silicon.fit_engine_factors(rows, Efficiency(copy.deepcopy(dict(base.params)), base.meta), max_nfev=1)
    assert "profile_moe_scale.trtllm" not in info["names"]
    assert eff.params["profile_moe_scale"]["trtllm"] == MOE_SCALE_PRIOR["trtllm"]
