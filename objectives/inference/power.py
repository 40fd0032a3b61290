"""Power and energy: a linear power model between idle and TDP driven by utilization."""
from __future__ import annotations

from typing import Any

import numpy as np

Num = Any


def power_w(idle_w: Num, tdp_w: Num, utilization: Num) -> Num:
    """Board power (W) at `utilization` in [0, 1]: idle + (TDP - idle) x utilization (clipped)."""
    u = np.clip(utilization, 0.0, 1.0)
    return idle_w + (tdp_w - idle_w) * u


def joules_per_token(power_w_per_gpu: Num, n_gpus: Num, seconds: Num, tokens: Num) -> Num:
    """Energy per output token, J: all GPUs' power over the time it took to produce `tokens`."""
    return power_w_per_gpu * n_gpus * seconds / np.maximum(tokens, 1e-12)


def usd_per_mtok(price_usd_per_gpu_hour: Num, n_gpus: Num, tokens_per_s: Num) -> Num:
    """Cost of one million output tokens, USD, at the GPU-hour price."""
    return price_usd_per_gpu_hour * n_gpus / 3600.0 / np.maximum(tokens_per_s, 1e-12) * 1e6
