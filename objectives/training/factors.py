"""The named efficiency factors of the training model, their priors, bounds, and the fitted JSON file.

Factors (all dimensionless unless the name carries a unit):

- ``gemm_eff.<family>.<group>``: achieved fraction of the dense tensor-core peak by the GEMMs of a layer, per
  GPU family and compute group ("16bit": bf16/fp16, "fp8": every fp8 recipe, "fp4": nvfp4).
- ``gemm_dim_half``: GEMM size at which efficiency halves (elements of hidden / tp): small per-GPU matrices
  (small models, wide tensor parallelism) run further from peak: eff x d / (d + gemm_dim_half).
- ``gemm_m_half``: GEMM rows (tokens of a micro-batch on one GPU) at which efficiency halves: x M / (M + it).
- ``hop_latency_us``: per-hop latency of a ring collective, us: a collective over g GPUs costs
  collective_latency_us + hop_latency_us x (g - 1) before its bytes (data-parallel collectives).
- ``attn_eff.<family>``: achieved fraction of the 16-bit peak by flash attention (scores and weighted values).
- ``elementwise_bytes``: HBM bytes moved per token per hidden unit per layer by the memory-bound kernels of one
  forward pass (norms, residual adds, activation function, rotary embedding, casts).
- ``layer_overhead_us``: fixed time per layer per micro-batch per pass (kernel launches, synchronizations), us.
- ``step_overhead_s``: fixed time per optimizer step (data loading, logging, gradient clipping), s.
- ``scale_up_bw_eff`` / ``scale_out_bw_eff``: achieved fraction of the link bandwidth by large collectives.
- ``tp_overlap``: fraction of tensor/sequence-parallel communication hidden behind GEMMs (NCCL collectives).
- ``tp_comm_overlap_eff``: the same with ``tp_comm_overlap=True`` (collectives chunked and pipelined with their
  GEMMs, Megatron-Core ``--tp-comm-overlap``); fitted on the one source that states it (Megatron-LM Jul 2024).
- ``dp_overlap``: fraction of the overlap window that hides data-parallel gradient reduction (ZeRO 0-2: the last
  micro-batch's forward + backward; ZeRO-3/FSDP gathers and reduce-scatters: the whole step's compute).
- ``mem_eff``: achieved fraction of HBM bandwidth by the optimizer step and elementwise kernels.
- ``collective_latency_us``: fixed latency of one collective, us.
- ``recipe_cost.<precision>``: GEMM time multiplier of an fp8/fp4 recipe relative to per-tensor fp8 (scaling
  factors, quantize kernels). Prior only: the calibration file has no row that distinguishes the recipes.

``Factors.load()`` reads objectives/data/training/factors.json (written by
``python -m objectives.calibration fit --kind training``); missing keys keep the priors below.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FACTORS_FILE = Path(__file__).resolve().parents[1] / "data" / "training" / "factors.json"

#: GPU families of the catalog and the compute groups of the training precisions
FAMILIES = ("volta", "ampere", "ada", "hopper", "blackwell", "blackwell-ultra", "cdna2", "cdna3", "cdna4", "gaudi3")
GROUPS = ("16bit", "fp8", "fp4")

#: priors (hand-set before any fit; the fit starts from them and pulls lightly towards them)
PRIORS: dict[str, Any] = {
    "gemm_eff": {f: {"16bit": 0.7, "fp8": 0.6, "fp4": 0.5} for f in FAMILIES},
    "gemm_dim_half": 64.0,
    "gemm_m_half": 128.0,
    "hop_latency_us": 2.0,
    "attn_eff": {f: 0.4 for f in FAMILIES},
    "elementwise_bytes": 40.0,
    "layer_overhead_us": 20.0,
    "step_overhead_s": 0.05,
    "scale_up_bw_eff": 0.75,
    "scale_out_bw_eff": 0.75,
    "tp_overlap": 0.3,
    "tp_comm_overlap_eff": 0.7,
    "dp_overlap": 0.8,
    "mem_eff": 0.8,
    "collective_latency_us": 15.0,
    "recipe_cost": {"bf16": 1.0, "fp16": 1.0, "fp8": 1.0, "fp8-rowwise": 1.05, "fp8-block": 1.08, "mxfp8": 1.0,
                    "nvfp4": 1.1},
}

#: (lower, upper) bounds of each fitted factor (by first path element)
BOUNDS: dict[str, tuple[float, float]] = {
    "gemm_eff": (0.2, 0.95), "gemm_dim_half": (0.0, 1024.0), "gemm_m_half": (0.0, 8192.0),
    "hop_latency_us": (0.0, 30.0), "attn_eff": (0.1, 0.9),
    "elementwise_bytes": (4.0, 400.0), "layer_overhead_us": (0.0, 500.0), "step_overhead_s": (0.0, 2.0),
    "scale_up_bw_eff": (0.2, 1.0), "scale_out_bw_eff": (0.2, 1.0), "tp_overlap": (0.0, 0.9),
    "tp_comm_overlap_eff": (0.0, 0.95),
    "dp_overlap": (0.0, 1.0), "mem_eff": (0.3, 0.95), "collective_latency_us": (1.0, 100.0),
}


@dataclass(frozen=True)
class Factors:
    """Efficiency factors (`params`, nested like `PRIORS`) and the fit's record (`meta`)."""

    params: Mapping[str, Any] = field(default_factory=lambda: copy.deepcopy(PRIORS))
    meta: Mapping[str, Any] = field(default_factory=dict)

    def get(self, path: str) -> float:
        """The factor at a dotted path ("gemm_eff.hopper.fp8")."""
        node: Any = self.params
        for k in path.split("."):
            node = node[k]
        return float(node)

    def with_values(self, values: Mapping[str, float], meta: Mapping[str, Any] | None = None) -> Factors:
        """A copy with the dotted-path factors in `values` replaced."""
        params = copy.deepcopy(dict(self.params))
        for path, v in values.items():
            keys = path.split(".")
            node = params
            for k in keys[:-1]:
                node = node[k]
            node[keys[-1]] = float(v)
        return Factors(params, dict(self.meta if meta is None else meta))

    def to_json(self) -> str:
        return json.dumps({"meta": dict(self.meta), "params": dict(self.params)}, indent=1, sort_keys=False)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Factors:
        """The fitted factors of `path` (default: the shipped file) over the priors; the priors if it is absent."""
        p = Path(path) if path is not None else FACTORS_FILE
        params = copy.deepcopy(PRIORS)
        if not p.exists():
            if path is not None:
                raise FileNotFoundError(f"training factors file not found: {str(p)!r}")
            return cls(params, {"note": "priors only: no fitted factors file"})
        doc = json.loads(p.read_text())
        _merge(params, doc.get("params", {}))
        return cls(params, doc.get("meta", {}))


def _merge(dst: dict, src: Mapping) -> None:
    for k, v in src.items():
        if isinstance(v, Mapping) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


_DEFAULT: dict[str, Factors] = {}


def default_factors() -> Factors:
    """The shipped fitted factors, read once per process."""
    if "f" not in _DEFAULT:
        _DEFAULT["f"] = Factors.load()
    return _DEFAULT["f"]


def reload_default_factors() -> Factors:
    """Re-read the shipped file (after the calibration command rewrote it)."""
    _DEFAULT.pop("f", None)
    return default_factors()
