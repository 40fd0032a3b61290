"""Turning user arguments (names, dtype strings, parallelism; scalars or arrays) into broadcastable numeric arrays.

Rules (documented for `estimate`, `max_throughput`, `StepModel`):
- model / gpu: a catalog name, alias or Hugging Face id (unknown -> the catalog's error with close matches), or a
  `Model` / `GPU` record; arrays of those broadcast like every other argument.
- act_dtype None -> the weight dtype when the GPU computes in it (fp8 on Ada/Hopper+, fp4 on Blackwell, int8,
  bf16/fp16), else bf16 (int4 weight-only, fp8 weight-only on Ampere, ...). fp32 weights compute in tf32.
- kv_dtype None -> the activation dtype for bf16/fp16/fp8; fp8 for fp4 activations (bf16 where the GPU has no
  fp8); int8 for int8 activations; bf16 otherwise.
- Unknown dtype names and non-positive sizes/lengths/parallel degrees raise ValueError. Configurations that are
  well-formed but cannot run give fits=False and a `reason` (never an exception), so a sweep never crashes:
  an activation precision the GPU cannot compute in (fp8 before Ada/Hopper, fp4 before Blackwell), int4
  activations, tp not dividing the attention heads, ep not dividing tp or the experts, and out of memory.
  KV heads: tp > n_kv_heads is allowed (KV heads replicated, as vLLM and TensorRT-LLM do); tp < n_kv_heads must
  divide them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from objectives.catalog.types import DTYPE_BYTES, DTYPES, GPU, Model

from .efficiency import FAMILIES, LINKS, PRECS, Efficiency

Num = Any

#: compute precision group of each activation dtype (index into efficiency.PRECS), -1: cannot compute in it
_PREC_OF = {"bf16": 0, "fp16": 0, "fp8": 1, "fp4": 2, "int8": 3, "fp32": 4, "tf32": 4, "int4": -1}
#: GPU.peak_tflops key of each activation dtype
_PEAK_KEY = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "fp4": "fp4", "int8": "int8", "fp32": "tf32",
             "tf32": "tf32", "int4": "int4"}
_BYTES = np.array([DTYPE_BYTES[d] for d in DTYPES])
_D = {d: i for i, d in enumerate(DTYPES)}

REASONS = (
    "",
    "activation precision not supported by the GPU (fp8 needs Ada/Hopper or newer, fp4 needs Blackwell)",
    "int4 is a weight-only format: activations cannot be int4",
    "tp does not divide the attention heads (or tp < n_kv_heads does not divide the KV heads)",
    "ep must divide tp and the number of experts (ep > 1 only for MoE models)",
    "does not fit: weights + KV cache + activations + runtime reserve exceed GPU memory",
)
R_OK, R_PREC, R_INT4, R_TP, R_EP, R_MEM = range(6)


def _catalog():
    from objectives import catalog
    return catalog


def _lookup(kind: str, x: Any) -> Any:
    if isinstance(x, (GPU, Model)):
        return x
    cat = _catalog()
    fn = getattr(cat, kind, None)
    if fn is None:  # pragma: no cover - catalog lookups not present
        raise RuntimeError(f"objectives.catalog.{kind}() is not available: pass a {kind.upper()} record instead")
    return fn(x)


def resolve_records(kind: str, x: Any) -> tuple[list, np.ndarray | None]:
    """(unique records, per-config index or None for a scalar) for a model/gpu argument."""
    if isinstance(x, (str, GPU, Model)):
        return [_lookup(kind, x)], None
    arr = np.asarray(x, dtype=object)
    if arr.ndim == 0:
        return [_lookup(kind, arr.item())], None
    keys = np.array([r.name if isinstance(r, (GPU, Model)) else str(r) for r in arr.ravel()], dtype=object)
    uniq, inv = np.unique(keys.astype(str), return_inverse=True)
    first = {}
    for i, k in enumerate(keys.astype(str)):
        first.setdefault(k, arr.ravel()[i])
    recs = [_lookup(kind, first[k]) for k in uniq]
    return recs, inv.reshape(arr.shape)


def dtype_codes(name: str, x: Any, allow_none: bool) -> Num:
    """Dtype argument -> index into DTYPES (int or int array); -1 for None (default rule)."""
    if x is None:
        if allow_none:
            return -1
        raise ValueError(f"{name} must be one of {DTYPES}, got None")
    if isinstance(x, str):
        if x not in _D:
            raise ValueError(f"unknown {name} {x!r}; known: {', '.join(DTYPES)}")
        return _D[x]
    arr = np.asarray(x, dtype=object)
    if arr.ndim == 0:
        return dtype_codes(name, arr.item(), allow_none)
    uniq, inv = np.unique(np.array([("" if v is None else str(v)) for v in arr.ravel()]), return_inverse=True)
    codes = []
    for u in uniq:
        codes.append(-1 if u == "" and allow_none else dtype_codes(name, None if u == "" else str(u), allow_none))
    return np.asarray(codes)[inv].reshape(arr.shape)


def positive(name: str, x: Any, integer: bool = True) -> Num:
    """Validate a size/length/degree argument: every value must be > 0. Returns a float or float array."""
    raw = np.asarray(x)
    a = raw.astype(float) if raw.dtype != float else raw
    if raw.dtype.kind in "iu":
        if np.any(raw <= 0):
            bad = a[a <= 0].ravel()[:3]
            raise ValueError(f"{name} must be positive, got {bad.tolist()}")
        return float(a) if a.ndim == 0 else a
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        bad = a[~(np.isfinite(a) & (a > 0))].ravel()[:3]
        raise ValueError(f"{name} must be positive, got {bad.tolist()}")
    if integer and np.any(a != np.round(a)):
        raise ValueError(f"{name} must be a whole number, got {a[a != np.round(a)].ravel()[:3].tolist()}")
    return float(a) if a.ndim == 0 else a


@dataclass
class GPUArrays:
    mem_bytes: Num
    bw: Num            # bytes/s
    link_gbs: Num
    link: Num          # index into LINKS
    family: Num        # index into FAMILIES
    tdp_w: Num
    idle_w: Num
    price: Num         # USD per GPU-hour
    peaks: np.ndarray  # [n_gpu_records, len(DTYPES)] dense peak FLOP/s (0: unsupported)
    index: Num         # per-config record index (0 for a scalar)


def gpu_arrays(recs: list, index: np.ndarray | None, prices: Any = None) -> GPUArrays:
    def col(f):
        c = np.array([float(f(g)) for g in recs])
        return float(c[0]) if index is None else c[index]

    def fam(g):
        if g.family not in FAMILIES:
            return FAMILIES.index("hopper")
        return FAMILIES.index(g.family)

    def price(g):
        if prices is not None and g.name in prices:
            return float(prices[g.name])
        return g.price_usd_per_hour

    peaks = np.array([[float(g.peak_tflops.get(_PEAK_KEY[d], 0.0) or 0.0) * 1e12 for d in DTYPES] for g in recs])
    # fp16 and bf16 share tensor-core rates; fill one from the other when a datasheet lists only one
    i16, ib = _D["fp16"], _D["bf16"]
    peaks[:, i16] = np.where(peaks[:, i16] > 0, peaks[:, i16], peaks[:, ib])
    peaks[:, ib] = np.where(peaks[:, ib] > 0, peaks[:, ib], peaks[:, i16])
    return GPUArrays(
        mem_bytes=col(lambda g: g.mem_gb * 1e9), bw=col(lambda g: g.mem_bw_tbs * 1e12),
        link_gbs=col(lambda g: g.link_bw_gbs), link=col(lambda g: LINKS.index(g.link_type) if g.link_type in LINKS
                                                      else LINKS.index("pcie")),
        family=col(fam), tdp_w=col(lambda g: g.tdp_w),
        idle_w=col(lambda g: g.idle_w if g.idle_w else 0.2 * g.tdp_w), price=col(price), peaks=peaks,
        index=0 if index is None else index,
    )


def _pick(table: np.ndarray, code: Num) -> Num:
    """table[..., code] with broadcasting of the leading dims of `table` against `code`."""
    code = np.asarray(code)
    shape = np.broadcast_shapes(table.shape[:-1], code.shape)
    t = np.broadcast_to(table, shape + table.shape[-1:])
    return np.take_along_axis(t, np.broadcast_to(code, shape)[..., None], axis=-1)[..., 0]


def resolve_dtypes(g: GPUArrays, w: Num, a: Num, kv: Num) -> tuple[Num, Num, Num, Num]:
    """(act code, kv code, precision-group index, reason code) after the default rules (module docstring)."""
    w, a, kv = np.asarray(w), np.asarray(a), np.asarray(kv)
    supp = g.peaks[g.index] > 0  # [..., len(DTYPES)] per config
    w_supported = _pick(supp, w)
    w_fp32 = (w == _D["fp32"]) | (w == _D["tf32"])
    default_a = np.where(w_fp32, _D["tf32"], np.where(w_supported & (w != _D["int4"]), w, _D["bf16"]))
    act = np.where(a < 0, default_a, a)
    prec = np.array([_PREC_OF[d] for d in DTYPES])[act]
    fp8_ok = supp[..., _D["fp8"]]
    kv_for = np.where(np.isin(act, [_D["bf16"], _D["fp16"], _D["fp8"]]), act,
                      np.where(act == _D["fp4"], np.where(fp8_ok, _D["fp8"], _D["bf16"]),
                               np.where(act == _D["int8"], _D["int8"], _D["bf16"])))
    kvc = np.where(kv < 0, kv_for, kv)
    reason = np.where(act == _D["int4"], R_INT4, np.where(_pick(supp, act), R_OK, R_PREC))
    return act, kvc, prec, reason


def dtype_bytes(code: Num) -> Num:
    return _BYTES[code]


def act_peak(g: GPUArrays, act: Num) -> Num:
    """Dense peak FLOP/s of each config's GPU in its activation precision (bf16 peak where unsupported)."""
    pk = g.peaks[g.index, act]
    return np.where(pk > 0, pk, g.peaks[g.index, _D["bf16"]])


def bf16_peak(g: GPUArrays) -> Num:
    return g.peaks[g.index, _D["bf16"]]


def eff_lookup(eff: Efficiency, name: str, family: Num) -> Num:
    return eff.fam_table(name)[np.asarray(family, dtype=int)]


def gemm_eff(eff: Efficiency, family: Num, prec: Num) -> Num:
    return eff.gemm_table()[np.asarray(family, dtype=int), np.maximum(np.asarray(prec, dtype=int), 0)]


def link_lookup(eff: Efficiency, name: str, link: Num) -> Num:
    return eff.link_table(name)[np.asarray(link, dtype=int)]


def int_code(d: str) -> int:
    return _D[d]


def precs() -> tuple[str, ...]:
    return PRECS
