"""Which fused-MoE rows the profile builder keeps: the kernel an engine runs by default (`MOE_OPT_IN`), and a cell
bounded by the same kernel's cell on a system of the same silicon (`_twin_bounded`)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives.profiles.build import MOE_OPT_IN, TWIN_SLACK, _twin_bounded, moe_tables

PL, BAL = "power_law_1.01", "balanced"
T = np.array([1.0, 4.0, 64.0, 1024.0, 16384.0])


def _family(h: int, f: int, lat: dict[tuple[int, str], float], kernel: str = "moe_torch_flow_cutlass",
            tp: int = 1, topk: int = 8, experts: int = 256) -> pd.DataFrame:
    """One fused-MoE family (NVFP4) at the EP sizes and routings of `lat`: latency = lat[(ep, dist)] x sqrt(T)."""
    return pd.concat([pd.DataFrame({"moe_dtype": "nvfp4", "kernel_source": kernel, "hidden_size": h,
                                    "inter_size": f, "topk": topk, "num_experts": experts, "moe_tp_size": tp,
                                    "moe_ep_size": ep, "num_tokens": T, "distribution": dist,
                                    "latency": v * np.sqrt(T)})
                      for (ep, dist), v in lat.items()], ignore_index=True)


def _at(tables: dict, key: tuple, tokens: float = 64.0) -> float:
    table, keys = tables["nvfp4"]
    i = [n + 1.0 for n, k in enumerate(keys) if tuple(int(x) for x in k) == key]
    assert len(i) == 1, (key, keys)
    return float(table(i[0], tokens))


def test_tensorrt_llms_min_latency_rows_are_not_its_default_kernel():
    # the same cells timed by CUTLASS and by TRTLLM-gen (min-latency mode, 2x faster): TensorRT-LLM's serving
    # default for an NVFP4 checkpoint is CUTLASS, so its table keeps those rows; another engine keeps the fastest
    cutlass = _family(7168, 2048, {(1, PL): 1.0, (8, PL): 0.5})
    fast = _family(7168, 2048, {(1, PL): 0.5, (8, PL): 0.25}, kernel="moe_torch_flow_min_latency")
    rows = pd.concat([cutlass, fast], ignore_index=True)
    assert "moe_torch_flow_min_latency" in MOE_OPT_IN["trtllm"]
    trt, other = moe_tables([rows], engine="trtllm"), moe_tables([rows], engine="")
    assert _at(trt, (7168, 2048, 8, 256, 1, 1)) == pytest.approx(8.0)
    assert _at(trt, (7168, 2048, 8, 256, 1, 8)) == pytest.approx(4.0)
    assert _at(other, (7168, 2048, 8, 256, 1, 1)) == pytest.approx(4.0)
    # a table of min-latency rows only leaves TensorRT-LLM no NVFP4 table rather than a wrong one
    assert "nvfp4" not in moe_tables([fast], engine="trtllm")


def test_a_cell_far_slower_than_the_same_silicons_twin_is_bounded_by_it():
    twin = _family(7168, 2048, {(1, PL): 1.0, (8, PL): 0.5})
    own = twin.assign(latency=twin["latency"] * 1.05)              # the tables' median ratio: 1.05
    slow = (own["moe_ep_size"] == 8) & (own["num_tokens"] == 64.0)
    own.loc[slow, "latency"] *= 1.7                                # one outlier cell
    mild = (own["moe_ep_size"] == 1) & (own["num_tokens"] == 4.0)
    own.loc[mild, "latency"] *= 1.08                               # within the slack: kept
    out = _twin_bounded(own, twin)
    cap = float(twin.loc[slow, "latency"].iloc[0]) * 1.05 * TWIN_SLACK
    assert float(out.loc[slow, "latency"].iloc[0]) == pytest.approx(cap)
    assert out.loc[~slow, "latency"].equals(own.loc[~slow, "latency"])
    # cells the twin did not time, and a twin with no common cell, leave the table as it was
    other = _family(6144, 2048, {(1, PL): 3.0})
    both = pd.concat([own, other], ignore_index=True)
    assert (_twin_bounded(both, twin)["latency"].to_numpy()[len(own):] == other["latency"].to_numpy()).all()
    assert _twin_bounded(other, twin).equals(other)


def test_shipped_b200_and_gb200_tensorrt_llm_tables_agree_on_deepseeks_layer():
    # the same kernel (CUTLASS, NVFP4) on the same silicon: B200's DeepSeek-V3-shaped layer at expert TP 4 and EP 1
    # / 8 within the twins' slack of GB200's, where its raw collection reads up to 1.8x (docs/profiles.md)
    from objectives import profiles
    b200, gb200 = profiles.load("B200", "trtllm"), profiles.load("GB200", "trtllm")
    tokens = 2.0 ** np.arange(0, 15)
    for shape in ((7168, 2048, 8, 256, 1, 1), (7168, 2048, 8, 256, 1, 8), (7168, 2048, 8, 256, 4, 1)):
        k = np.array([shape], dtype=float)
        a, b = (p.table("moe.nvfp4")(np.full_like(tokens, p.shape_index("moe.nvfp4", k)[0]), tokens)
                for p in (b200, gb200))
        assert (a <= b * 1.06 * TWIN_SLACK).all() and (a >= b * 0.85).all(), (shape, a / b)
