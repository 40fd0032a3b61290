"""Quantization: weight, activation (compute) and KV-cache precision, valid per GPU.

A *format* pairs a weight precision with the precision the GEMMs compute in:

=========  ============  ==========  ==============================================================
format     weight_dtype  act_dtype   needs
=========  ============  ==========  ==============================================================
bf16       bf16          bf16        any GPU
fp8        fp8           fp8         fp8 tensor cores (Ada, Hopper, Blackwell, MI300 and newer)
int8       int8          int8        int8 tensor cores (SmoothQuant-style W8A8)
w8a16      fp8           bf16        any GPU (fp8 weight-only, dequantized in the GEMM)
w4a16      int4          bf16        any GPU (AWQ/GPTQ int4 weight-only)
fp4        fp4           fp4         fp4 tensor cores (Blackwell, MI355X)
w4a16_fp4  fp4           bf16        any GPU (fp4 weights dequantized in the GEMM: how MXFP4 checkpoints such
                                     as gpt-oss run before Blackwell; opt-in, `OPT_IN_FORMATS`)
=========  ============  ==========  ==============================================================

These are the formats ``objectives.accuracy`` has a published quality figure for (int4 weights with fp8 compute,
TensorRT-LLM's W4A8, is left out for that reason). Whether a GPU computes in a precision is read from the catalog (``GPU.supports``: a dense peak for that dtype),
the same rule the inference model applies. The KV-cache precision is a separate knob (bf16 or fp8 storage;
fp8 KV storage is dequantized on the fly and is allowed on every GPU).

All rules are constraint *expressions* generated from the catalog (stored with a study), e.g.
``"act_dtype != 'fp8' or gpu in ('H100-SXM-80GB', 'L40S',)"``.
"""
from __future__ import annotations

from collections.abc import Sequence

import dse
from dse import SpaceError
from objectives import accuracy
from objectives.catalog import GPU

from .compose import one_of
from .hardware import gpu_records

#: format name -> (weight_dtype, act_dtype)
FORMATS: dict[str, tuple[str, str]] = {
    "bf16": ("bf16", "bf16"),
    "fp8": ("fp8", "fp8"),
    "int8": ("int8", "int8"),
    "w8a16": ("fp8", "bf16"),
    "w4a16": ("int4", "bf16"),
    "fp4": ("fp4", "fp4"),
    "w4a16_fp4": ("fp4", "bf16"),
}

#: formats offered only when asked for (``formats=``, or ``opt_in=`` by a caller that knows the model): fp4 weights
#: computed in 16 bits is the native deployment of an fp4 checkpoint on a GPU without fp4 tensor cores (gpt-oss's
#: MXFP4 on Hopper: TensorRT-LLM's W4A16_MXFP4, vLLM's and SGLang's Marlin / Triton MXFP4 kernels), not a format
#: anyone quantizes a 16-bit model into; `spaces.llm_serving` adds it for models whose checkpoint is fp4
OPT_IN_FORMATS = ("w4a16_fp4",)

#: KV-cache precisions offered by default.
KV_DTYPES = ("bf16", "fp8")


def computes(gpu: GPU, dtype: str) -> bool:
    """True when ``gpu`` has tensor cores computing in ``dtype`` (bf16 and fp16 stand in for each other)."""
    if dtype in ("bf16", "fp16"):
        return gpu.supports("bf16") or gpu.supports("fp16")
    return gpu.supports(dtype)


def format_ok(gpu: GPU, weight_dtype: str, act_dtype: str) -> bool:
    """True when (weight_dtype, act_dtype) is a known format (FORMATS) that ``gpu`` can run."""
    return (weight_dtype, act_dtype) in FORMATS.values() and computes(gpu, act_dtype)


def idle_gpus(gpus: Sequence[GPU], formats: Sequence[str]) -> list[str]:
    """The names of the ``gpus`` that run none of ``formats`` (names from :data:`FORMATS`)."""
    return [g.name for g in gpus if not any(computes(g, FORMATS[f][1]) for f in formats)]


def quantization(gpus: Sequence[str | GPU] | str, *, formats: Sequence[str] | None = None,
                 kv_dtypes: Sequence[str] = KV_DTYPES, opt_in: Sequence[str] = ()) -> dse.Space:
    """Space of ``gpu``, ``weight_dtype``, ``act_dtype`` and ``kv_dtype`` with the validity rules above.

    ``formats``: names from :data:`FORMATS` (default: every format at least one of ``gpus`` can run, less
    :data:`OPT_IN_FORMATS` other than those named in ``opt_in``). The ``gpu`` parameter is the same as
    :func:`spaces.hardware`'s, so the two compose.
    """
    recs = gpu_records(gpus)
    if formats is None:
        formats = [f for f, (w, a) in FORMATS.items() if any(computes(g, a) for g in recs)
                   and (f not in OPT_IN_FORMATS or f in opt_in)]
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise SpaceError(f"formats={formats!r}: {unknown or 'empty'} unknown; valid formats: {list(FORMATS)}")
    dead = [f for f in formats if not any(computes(g, FORMATS[f][1]) for g in recs)]
    if dead:
        raise SpaceError(f"formats {dead} run on none of the GPUs {[g.name for g in recs]}")
    idle = idle_gpus(recs, formats)
    if idle:
        raise SpaceError(f"GPUs {idle} run none of the formats {formats}: no configuration of the space would use "
                         f"them; drop them or add a format they run")
    kv = list(dict.fromkeys(kv_dtypes))
    # a KV dtype the quality proxy has no figure for fails every trial of a serving objective (its quality metric
    # raises): refused here. int8 KV caches also run on TensorRT-LLM alone (vLLM's and SGLang's are fp8 only)
    valid_kv = accuracy.kv_dtypes()
    bad_kv = [k for k in kv if k not in valid_kv]
    if bad_kv or not kv:
        raise SpaceError(f"kv_dtypes={list(kv_dtypes)!r}: {bad_kv or 'empty'} not allowed (the quality proxy, "
                         f"objectives/data/accuracy.json, has no figure for them: every trial would fail); valid: "
                         f"{', '.join(valid_kv)}")
    weights = list(dict.fromkeys(FORMATS[f][0] for f in formats))
    acts = list(dict.fromkeys(FORMATS[f][1] for f in formats))
    cons = []
    for w in weights:
        allowed = [FORMATS[f][1] for f in formats if FORMATS[f][0] == w]
        if set(allowed) != set(acts):
            cons.append(f"weight_dtype != {w!r} or {one_of('act_dtype', allowed)}")
    for a in acts:
        able = [g.name for g in recs if computes(g, a)]
        if len(able) < len(recs):
            cons.append(f"act_dtype != {a!r} or {one_of('gpu', able)}")
    return dse.Space(
        gpu=dse.Categorical([g.name for g in recs]),
        weight_dtype=dse.Categorical(weights),
        act_dtype=dse.Categorical(acts),
        kv_dtype=dse.Categorical(kv),
        constraints=cons,
    )
