"""GPU board power and the energy of LLM inference, by workload phase, from published measurements.

Power of one GPU over a span of ``span_s`` seconds in which its kernels run ``busy_s`` seconds (the rest: host
gaps, waits on links) and its tensor cores are saturated, at the fitted GEMM rate, ``compute_s`` of those seconds:

    P = P_idle + (P_tdp - P_idle) x (m x busy_s + (k - m) x min(compute_s, busy_s)) / span_s        (W)

- ``P_idle``: the catalog's ``idle_w`` (a published idle reading; with a serving engine loaded where one was
  published); a GPU without one gets ``idle_frac`` x TDP, ``idle_frac`` being the median idle / TDP ratio of the
  catalog GPUs with a published idle reading (`idle_power_w`). The old unsourced guess was 0.2 x TDP.
- ``m`` (`PowerFactors.mem_bound_frac`): the share of the idle-to-TDP range drawn while kernels stream HBM with
  the tensor cores mostly waiting (memory-bound decode). Fitted (``python -m objectives.inference.power_fit``) to
  published board-power readings of vLLM decode; the readings, their sources and the fit are in
  objectives/data/power.json and docs/energy.md.
- ``k`` (`PowerFactors.compute_frac`): the share drawn while the tensor cores are saturated (compute-bound prefill
  GEMMs run at the board power limit: 1.0, the datasheet TDP being that limit).

So the three phases come out as: idle (no kernels) P_idle; memory-bound decode P_idle + m (TDP - P_idle), well
below TDP; compute-bound prefill -> TDP. Energy over the span is P x span_s (`phase_energy_j`, linear in the
times, so a request's energy is the sum over its phases). Every function takes numpy arrays that broadcast.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .ops import sparse_prefill_pairs

Num = Any

#: the shipped factors and the published readings they were fitted to
POWER_FILE = Path(__file__).resolve().parents[1] / "data" / "power.json"


@dataclass(frozen=True)
class PowerFactors:
    """The fitted factors of the power model (fractions, dimensionless); see the module docstring.

    mem_bound_frac: share of (TDP - idle) drawn by memory-bound kernels (decode) while they run.
    compute_frac: share of (TDP - idle) drawn by kernels with saturated tensor cores (prefill GEMMs).
    idle_frac: idle power / TDP for a GPU without a published idle reading (median of those with one).
    """

    mem_bound_frac: float
    compute_frac: float
    idle_frac: float

    def __post_init__(self) -> None:
        for name in ("mem_bound_frac", "compute_frac", "idle_frac"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 < v <= 1.0:
                raise ValueError(f"PowerFactors.{name} = {v!r} is invalid; expected a fraction in (0, 1]")
        if self.mem_bound_frac > self.compute_frac:
            raise ValueError(f"PowerFactors.mem_bound_frac = {self.mem_bound_frac!r} exceeds compute_frac = "
                             f"{self.compute_frac!r}; memory-bound kernels cannot draw more than compute-bound ones")


def load_power_factors(path: str | Path | None = None) -> PowerFactors:
    """The factors stored in `path` (default: the shipped objectives/data/power.json, read once)."""
    if path is None:
        return _shipped_factors()
    return _read_factors(Path(path))


@lru_cache(maxsize=1)
def _shipped_factors() -> PowerFactors:
    return _read_factors(POWER_FILE)


def _read_factors(path: Path) -> PowerFactors:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"power factors file {str(path)!r} does not exist") from None
    f = data.get("factors", {})
    missing = [k for k in ("mem_bound_frac", "compute_frac", "idle_frac") if k not in f]
    if missing:
        raise ValueError(f"power factors file {str(path)!r} lacks {missing}; expected factors mem_bound_frac, "
                         "compute_frac, idle_frac, each {value, source, note}")
    return PowerFactors(**{k: float(f[k]["value"]) for k in ("mem_bound_frac", "compute_frac", "idle_frac")})


def idle_power_w(gpu: Any, factors: PowerFactors | None = None) -> float:
    """Idle board power of one GPU (W): the catalog's published `idle_w`, else idle_frac x tdp_w."""
    if getattr(gpu, "idle_w", None):
        return float(gpu.idle_w)
    f = factors or load_power_factors()
    return f.idle_frac * float(gpu.tdp_w)


def phase_energy_j(idle_w: Num, tdp_w: Num, span_s: Num, busy_s: Num, compute_s: Num,
                   factors: PowerFactors | None = None) -> Num:
    """Energy of one GPU (J) over `span_s` seconds with `busy_s` of kernel time, `compute_s` of it compute-bound:
    E = P_idle x span + (P_tdp - P_idle) x (m x busy + (k - m) x min(compute, busy)), busy clipped to [0, span]."""
    f = factors or load_power_factors()
    busy = np.clip(busy_s, 0.0, span_s)
    comp = np.clip(compute_s, 0.0, busy)
    return idle_w * span_s + (tdp_w - idle_w) * (f.mem_bound_frac * busy
                                                 + (f.compute_frac - f.mem_bound_frac) * comp)


def power_w(idle_w: Num, tdp_w: Num, utilization: Num, compute_fraction: Num = None,
            factors: PowerFactors | None = None) -> Num:
    """Board power of one GPU (W) with kernels running a fraction `utilization` in [0, 1] of the time, of which
    `compute_fraction` (a fraction of the whole time, <= utilization) with saturated tensor cores:
    P = P_idle + (P_tdp - P_idle) x (m x u + (k - m) x c). `compute_fraction=None` means every kernel is
    compute-bound (c = u), the upper end: P = P_idle + (P_tdp - P_idle) x k x u."""
    u = np.clip(utilization, 0.0, 1.0)
    c = u if compute_fraction is None else compute_fraction
    return phase_energy_j(idle_w, tdp_w, 1.0, u, c, factors)


def compute_s(c: Any, T: Num, A: Num, D: Num, K: Num, S: Num) -> Num:
    """Seconds of a forward pass (the `ops.forward_s` arguments; c a `StepCoeffs`) that its tensor cores spend
    saturated at the fitted GEMM rate: linear layers and routed experts over M = T + D tokens, prefill attention
    over A query-key pairs, the LM head over S rows. Weight and KV streaming (decode) is not counted: that is the
    memory-bound part. (The measured-profile path keeps these closed-form coefficients, so the same count applies.)"""
    M = T + D
    t = c.lin_s_tok * M + c.head_s_row * S
    if not (isinstance(c.n_experts, (int, float)) and c.n_experts == 0):
        t = t + c.exp_s_tok * M * c.moe_ranks * c.top_k
    if not (isinstance(c.sparse_span, (int, float)) and c.sparse_span == 0):  # MiniMax sparse attention's prefill
        t = t + sparse_prefill_pairs(c, T, A) * c.sparse_s_pair
    return t + A * c.attn_s_pair


def joules_per_token(power_w_per_gpu: Num, n_gpus: Num, seconds: Num, tokens: Num) -> Num:
    """Energy per output token, J: all GPUs' power over the time it took to produce `tokens`."""
    return power_w_per_gpu * n_gpus * seconds / np.maximum(tokens, 1e-12)


def usd_per_mtok(price_usd_per_gpu_hour: Num, n_gpus: Num, tokens_per_s: Num) -> Num:
    """Cost of one million output tokens, USD, at the GPU-hour price."""
    return price_usd_per_gpu_hour * n_gpus / 3600.0 / np.maximum(tokens_per_s, 1e-12) * 1e6


__all__ = ["PowerFactors", "load_power_factors", "idle_power_w", "phase_energy_j", "power_w", "compute_s",
           "joules_per_token", "usd_per_mtok", "POWER_FILE"]
