"""Which fused-MoE rows the profile builder keeps: the kernel an engine runs by default (`MOE_OPT_IN`)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives.profiles.build import MOE_OPT_IN, moe_tables

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
