"""End-to-end serving measurements in the layouts people have, normalized to one row per deployment and load point.

    from objectives.calibration.measurements import read_measurements
    rows = read_measurements("../shared/calibration/serving_silicon.csv")             # layout detected
    rows = read_measurements("results/", gpu="h200_sxm", tp=8, weight_dtype="fp8")     # vllm bench serve JSONs

Layouts (``layout=`` or detected from the path and its columns/keys):

- ``"silicon"``: aiconfigurator-core's silicon CSV (``../shared/calibration/serving_silicon.csv``): one row per
  closed-loop measurement, ``mode`` agg (``tp_size``, ``pp_size``, ``attention_dp_size``, ``moe_tp_size``,
  ``moe_ep_size``, ``batch_size`` per attention-DP rank) or disagg (``prefill_*`` / ``decode_*`` pools); the
  concurrency is ``silicon_concurrency=`` in ``silicon_data_source``, else the ``_c<N>_`` part of ``id``. The
  expert-parallel labels that count more GPUs than the run had are read as launched (`launched_tp`).
- ``"vllm_json"``: what ``vllm bench serve --save-result`` (or ``benchmarks/benchmark_serving.py``) writes: one JSON
  object per file, or several, one per line, with ``--append-result``; a directory reads every ``*.json`` in it
  and its subfolders except the ``*.pytorch.json`` companions, the calibrated profiles ``dse calibrate`` wrote and
  a ``vllm bench sweep serve`` combination's ``summary.json`` (its ``run=N.json`` files are read; named on its
  own, a summary is its runs). The JSON has no deployment: it comes from ``--metadata key=value``
  entries (vLLM stores each as a top-level string key of the result) and, where the file does not say, from the
  keyword defaults (``gpu=``, ``tp=`` required, ``weight_dtype=`` too for a model the catalog does not know,
  else the checkpoint's own format, what ``vllm serve`` runs; ``engine=`` (a name, or "vllm==0.11.0" /
  "vllm@0.11.0" with its version), ``engine_version=``, ``pp=``, ``attn_dp=``, ``moe_tp=``, ``moe_ep=``,
  ``moe_dtype=``, ``kv_dtype=``, ``mode=``, ``model=`` and the disagg pool keys optional). The serve flags' names
  are read too (``tensor_parallel_size``, ``data_parallel_size`` / ``dp_size`` as attention-DP ranks,
  ``enable_expert_parallel``: EP = tp x dp, ``quantization``, ``kv_cache_dtype``), and ``gpu`` may be the device
  name nvidia-smi prints. Only a closed loop is read as one: ``max_concurrency`` at the default rate (inf), capped
  at ``num_prompts``; an offered ``request_rate`` (a cap under it bounds, not sets, the requests in flight) and a
  ``--ramp-up-strategy`` run have no client concurrency.
- ``"published"``: the published-measurements CSV (``../shared/calibration/published_measurements.csv``) read and
  classified by `objectives.calibration.data`; its one-metric-per-row records are grouped into one row per
  (source, deployment, load point).

Columns of the result (``COLUMNS``; NaN where the source does not say):

=====================  ===============================================================================================
source_file            the file read (str)
source_row             1-based data row (CSV, header excluded) or record (JSON: object in the file) of the row
layout                 "silicon" | "vllm_json" | "published"
model                  model id as given (Hugging Face id, or the published table's model name)
gpu                    the file's GPU/system name as given ("h200_sxm", "H100-SXM-80GB", ...)
engine                 "vllm" | "sglang" | "trtllm" (published NIM rows: "nim")
engine_version         engine version string as given (NaN where unknown); the cost model prices each row's
                       release (`engine_releases`)
mode                   "agg" (one pool) | "disagg" (prefill and decode pools)
tp, pp, attn_dp        agg pool: tensor, pipeline and attention-data parallel sizes (GPUs = tp * pp * attn_dp)
moe_tp, moe_ep         agg pool: expert tensor- and expert-parallel sizes (moe_tp * moe_ep = tp * attn_dp)
concurrency            closed-loop client concurrency (requests in flight); vLLM JSON: max_concurrency, else
                       num_prompts when all requests were issued at once (request_rate inf)
request_rate           offered request rate (requests/s; inf = all at once; NaN for closed-loop tables)
batch_size             agg: running sequences per attention-DP rank as the source states it (silicon: concurrency /
                       attn_dp; published: the static batch)
isl, osl               mean input and output tokens per request
weight_dtype           catalog dtype of the dense weights: "bf16" | "fp16" | "fp8" | "fp4" | "int4" | "int8"
weight_quant           the source's scheme for them: "fp8", "fp8_block", "nvfp4", "mxfp4", "int4_wo", ... ("bf16")
moe_dtype, moe_quant   the same for the expert weights (equal to the weight columns where the source has one)
kv_dtype               KV-cache dtype where the source states it
ttft_ms, tpot_ms       mean time to first token and mean time per output token after the first (ms); published
                       itl_ms rows fill tpot_ms
itl_ms, e2e_ms         mean inter-token and end-to-end request latency (ms)
throughput_tok_s       output tokens/s of the whole deployment
throughput_tok_s_gpu   output tokens/s per GPU as published
request_throughput     completed requests/s
n_gpus                 GPUs of the deployment (all pools)
prefill_workers, prefill_tp, prefill_pp, prefill_attn_dp, prefill_moe_tp, prefill_moe_ep, prefill_batch_size
decode_workers, decode_tp, decode_pp, decode_attn_dp, decode_moe_tp, decode_moe_ep, decode_batch_size
                       disagg pools (NaN for agg rows; silicon disagg rows without worker counts keep NaN workers:
                       the source does not say what was deployed)
kind                   published rows: objectives.calibration.data's kind (static, ttft, latency, ifb, serving,
                       excluded); "serving" otherwise
note                   free text: silicon image / measurement date, published source_note, vLLM label
=====================  ===============================================================================================

A file with a missing column, or a non-numeric value where a number is required, raises ValueError naming the file,
the 1-based row and the column.
"""
from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

LAYOUTS = ("silicon", "vllm_json", "published")
POOL_FIELDS = ("workers", "tp", "pp", "attn_dp", "moe_tp", "moe_ep", "batch_size")
COLUMNS = (["source_file", "source_row", "layout", "model", "gpu", "engine", "engine_version", "mode", "tp", "pp",
            "attn_dp", "moe_tp", "moe_ep", "concurrency", "request_rate", "batch_size", "isl", "osl",
            "weight_dtype", "weight_quant", "moe_dtype", "moe_quant", "kv_dtype", "ttft_ms", "tpot_ms", "itl_ms",
            "e2e_ms", "throughput_tok_s", "throughput_tok_s_gpu", "request_throughput", "n_gpus"]
           + [f"{p}_{f}" for p in ("prefill", "decode") for f in POOL_FIELDS] + ["kind", "note"])
_STR_COLUMNS = {"source_file", "layout", "model", "gpu", "engine", "engine_version", "mode", "weight_dtype",
                "weight_quant", "moe_dtype", "moe_quant", "kv_dtype", "kind", "note"}

#: quantization scheme (silicon gemm_quant_mode / moe_quant_mode, checkpoint formats) -> catalog dtype of the
#: weights. The silicon names are aiconfigurator-core's GEMMQuantMode and MoEQuantMode members
#: (aiconfigurator_core/sdk/common.py, 0.12.0): fp8_static / fp8_ootb are FP8 GEMMs, sq SmoothQuant int8,
#: nvfp4_wo / w4a16_nvfp4 NVFP4 weights dequantized to bf16 (non-Blackwell), w4a16_mxfp4 gpt-oss's MXFP4 experts,
#: w4a8_mxfp4_mxfp8(_trtllm) MXFP4 experts with MXFP8 activations (Blackwell), w4a16_mxfp4_cutlass the Hopper path
QUANT_DTYPES: Mapping[str, str] = {
    "bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "fp8": "fp8", "fp8_block": "fp8", "fp8_blockwise": "fp8", "fp8_per_tensor": "fp8", "w8a8_fp8": "fp8",
    "fp8_static": "fp8", "fp8_ootb": "fp8", "mxfp8": "fp8",
    "fp4": "fp4", "nvfp4": "fp4", "mxfp4": "fp4", "w4a8_mxfp4_fp8": "fp4", "nvfp4_wo": "fp4", "w4a16_nvfp4": "fp4",
    "w4a16_mxfp4": "fp4", "w4a8_mxfp4_mxfp8": "fp4", "w4a8_mxfp4_mxfp8_trtllm": "fp4", "w4a16_mxfp4_cutlass": "fp4",
    "int4": "int4", "int4_wo": "int4", "w4a16": "int4", "awq": "int4", "gptq": "int4", "w4afp8": "int4",
    # vLLM's --quantization names of the same formats: ModelOpt FP8 checkpoints, the Marlin kernels of AWQ / GPTQ
    "modelopt": "fp8", "awq_marlin": "int4", "gptq_marlin": "int4",
    "int8": "int8", "int8_wo": "int8", "w8a16": "int8", "w8a8": "int8", "int8_sq": "int8", "sq": "int8",
}
#: schemes that fix the GEMM's compute (activation) dtype apart from the weights' (aiconfigurator-core's
#: QuantMapping.compute_dtype): weight-only formats compute in bf16, the w4a8 ones in fp8, SmoothQuant in int8.
#: The others compute in their weights' dtype where the GPU can (the cost model's default)
QUANT_ACT: Mapping[str, str] = {
    "int4_wo": "bf16", "int8_wo": "bf16", "w4a16": "bf16", "w8a16": "bf16", "awq": "bf16", "gptq": "bf16",
    "awq_marlin": "bf16", "gptq_marlin": "bf16",
    "nvfp4_wo": "bf16", "w4a16_nvfp4": "bf16", "w4a16_mxfp4": "bf16", "w4a16_mxfp4_cutlass": "bf16",
    "w4afp8": "fp8", "w4a8_mxfp4_fp8": "fp8", "w4a8_mxfp4_mxfp8": "fp8", "w4a8_mxfp4_mxfp8_trtllm": "fp8",
    "sq": "int8", "int8_sq": "int8", "w8a8": "int8",
}
#: MXFP4 expert schemes with 8-bit activations (gpt-oss on Blackwell): the activations they name are the experts'
#: (the `moe_act_dtype` knob's, each engine's MoE kernel by default), not the act_dtype of the checkpoint's
#: unquantized layers, which compute in 16 bits (`inference.resolve.R_MX_ACT`): `model_dtypes` leaves their act_dtype
#: to the cost model's default (the w4a16 ones name 16 bits, that default)
MXFP4_EXPERT_SCHEMES = ("w4a8_mxfp4_fp8", "w4a8_mxfp4_mxfp8", "w4a8_mxfp4_mxfp8_trtllm")
#: a scheme not listed above, by the formats its name spells (checked in order): "fp8_pertensor_dynamic" -> fp8
_QUANT_TOKENS = (("fp4", "fp4"), ("fp8", "fp8"), ("int4", "int4"), ("w4a", "int4"), ("int8", "int8"),
                 ("w8a", "int8"), ("bfloat16", "bf16"), ("bf16", "bf16"), ("float16", "fp16"), ("fp16", "fp16"))
ENGINES: Mapping[str, str] = {"vllm": "vllm", "sglang": "sglang", "trtllm": "trtllm", "tensorrt-llm": "trtllm",
                              "tensorrt_llm": "trtllm", "trt-llm": "trtllm"}

#: `vllm bench serve --backend` (also `benchmarks/benchmark_serving.py`'s) clients that name the engine they
#: measured; the OpenAI-compatible and vLLM endpoints ("openai", "openai-chat", "vllm", ...) are read as vLLM's,
#: unless --metadata engine= (or engine=) names another
BACKEND_ENGINES: Mapping[str, str] = {"sglang": "sglang", "tensorrt-llm": "trtllm", "trt-llm": "trtllm"}
#: clients of servers that are none of the profiled engines (benchmark_serving.py's ASYNC_REQUEST_FUNCS): their
#: results are refused unless the metadata names the engine behind them
OTHER_SERVERS = ("tgi", "lmdeploy", "deepspeed-mii", "scalellm", "llama.cpp")

#: the quantization schemes of a silicon row whose KV cache the harness launched in fp8: aiconfigurator deploys
#: with the KV dtype its SDK infers from the checkpoint's quantization, fp8 for an fp8, fp8_block or nvfp4
#: checkpoint whatever its kv_cache_quant_algo (`_infer_quant_modes_from_raw_config`, aiconfigurator_core/sdk/
#: models/helpers.py), which its generator writes as the engine's --kv-cache-dtype / kv_cache_config.dtype
#: (src/aiconfigurator/generator/module_bridge.py, config/backend_config_mapping.yaml), and predicts its silicon
#: rows so (tools/accuracy_regression_testing/predict_silicon_sample.py leaves the KV mode to that inference);
#: other schemes (int4_wo, 16-bit) keep the model's 16-bit cache there, the cost model's default
SILICON_FP8_KV_QUANT = ("fp8", "fp8_block", "nvfp4")
#: GPU families (`catalog.GPU.family`) whose silicon rows measure the engine's own KV default ("auto", the cost
#: model's None: vLLM's 16-bit cache for an FP8 checkpoint without FP8 KV scales, vllm/config/cache.py
#: ``CacheConfig.cache_dtype = "auto"``; SGLang's bfloat16 for DeepSeek sparse attention below compute capability
#: 10, server_args.py ``_set_default_nsa_kv_cache_dtype``) rather than `SILICON_FP8_KV_QUANT`'s fp8. The file
#: records no launch flags; the rows say which pool ran where their closed loops outgrow it (the sequences in
#: flight past the knee, TPOT flat and TTFT whole request lifetimes: a 16-bit pool's count on the Hopper rows of
#: two engines and models, an fp8 pool's on the Blackwell ones, docs/profiles.md, thirty-second round)
SILICON_AUTO_KV_FAMILIES = ("hopper",)

SILICON_REQUIRED = ("id", "silicon_data_source", "backend", "backend_version", "model_path", "system", "precision",
                    "mode", "isl", "osl", "gemm_quant_mode", "moe_quant_mode", "batch_size", "tp_size", "pp_size",
                    "attention_dp_size", "moe_tp_size", "moe_ep_size", "silicon_ttft_ms", "silicon_tpot_ms",
                    *[f"{p}_{f}" for p in ("prefill", "decode")
                      for f in ("batch_size", "num_workers", "tp_size", "pp_size", "attention_dp_size",
                                "moe_tp_size", "moe_ep_size")])
PUBLISHED_REQUIRED = ("source_url", "source_note", "model", "gpu", "n_gpus", "tp", "pp", "weight_dtype", "act_dtype",
                      "kv_dtype", "engine", "batch_size", "concurrency", "input_len", "output_len", "metric",
                      "value", "unit")
#: keys a vllm bench serve result must carry (numbers)
VLLM_REQUIRED = ("completed", "total_input_tokens", "total_output_tokens", "mean_ttft_ms", "mean_tpot_ms")
#: keys read where a vllm bench serve result has them (numbers; the load and the further metrics)
VLLM_OPTIONAL = ("mean_itl_ms", "mean_e2el_ms", "output_throughput", "request_throughput", "request_rate",
                 "max_concurrency", "num_prompts")


# ---------------------------------------------------------------------------------------------------- helpers


def _fail(path: Path | str, row: int | None, column: str, what: str) -> ValueError:
    where = f"{path}" + (f": row {row}" if row is not None else "")
    return ValueError(f"{where}, column {column!r}: {what}")


def _require_columns(df: pd.DataFrame, path: Path, required: tuple[str, ...], layout: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: row 0 (header): missing column(s) {missing} required by the {layout!r} layout "
                         f"(it needs {list(required)})")


def _numeric(df: pd.DataFrame, path: Path, column: str, required: pd.Series | np.ndarray | bool = False,
             positive: bool = False, where: pd.Series | np.ndarray | bool | None = None) -> np.ndarray:
    """Column as float; a non-numeric or non-finite cell ("inf"), or an empty one where `required`, raises
    ValueError naming the file, row and column; with `positive`, so does a value <= 0 where `required` (`where`: on
    these rows whenever one is given, required or not)."""
    raw = df[column]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(float)
    text = raw.astype(object).where(raw.notna(), None)
    bad_text = np.array([t is not None and str(t).strip() != "" for t in text]) & np.isnan(vals)
    bad_text |= np.isinf(vals)
    req = np.broadcast_to(np.asarray(required, dtype=bool), vals.shape)
    bad = bad_text | (req & np.isnan(vals))
    if positive:
        scope = req if where is None else req | np.broadcast_to(np.asarray(where, dtype=bool), vals.shape)
        bad |= scope & ~np.isnan(vals) & ~(vals > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        v = raw.iloc[i]
        what = (f"{v!r} is not a {'finite ' if np.isinf(vals[i]) else ''}number" if bad_text[i] else
                "empty, a number is required here" if np.isnan(vals[i]) else f"{v!r} must be positive")
        raise _fail(path, i + 1, column, what)
    return vals


def quant_dtype(scheme: Any) -> str | None:
    """Catalog weight dtype of a quantization scheme name (`QUANT_DTYPES`, else the format its name spells), or
    None when it names none."""
    s = str(scheme).strip().lower()
    if s in QUANT_DTYPES:
        return QUANT_DTYPES[s]
    return next((d for tok, d in _QUANT_TOKENS if tok in s), None)


def _dtype_of(scheme: Any, path: Path, row: int, column: str) -> str:
    d = quant_dtype(scheme)
    if d is None:
        raise _fail(path, row, column, f"unknown quantization {scheme!r}; valid: {sorted(QUANT_DTYPES)}")
    return d


def model_dtypes(rows: pd.DataFrame, moe: Any = True) -> tuple[np.ndarray, np.ndarray]:
    """The weight and activation dtypes the cost model runs normalized rows with: on the rows of MoE models
    (`moe`, a mask), the expert weights' dtype where it is narrower than the dense weights' (gpt-oss: bf16
    attention, MXFP4 experts; the model keeps the attention projections of 4-bit MoE checkpoints in 16 bits,
    `inference.resolve.ATTN_16BIT_WEIGHTS`), and the compute dtype that scheme fixes (`QUANT_ACT`; None: the
    model's default for the weights; an MXFP4 expert scheme's 8-bit one is its experts', `MXFP4_EXPERT_SCHEMES`: None)."""
    from objectives.catalog.types import DTYPE_BYTES
    w = rows["weight_dtype"].to_numpy(object)
    mo = rows["moe_dtype"].to_numpy(object) if "moe_dtype" in rows else w
    wq = rows["weight_quant"].to_numpy(object) if "weight_quant" in rows else w
    mq = rows["moe_quant"].to_numpy(object) if "moe_quant" in rows else wq

    def nbytes(d: Any) -> float:
        return DTYPE_BYTES.get(str(d), 2.0) if isinstance(d, str) else np.inf
    use_moe = np.array([nbytes(b) < nbytes(a) for a, b in zip(w, mo)], dtype=bool) & np.asarray(moe, dtype=bool)
    weight = np.where(use_moe, mo, w).astype(object)
    scheme = np.where(use_moe, mq, wq)
    act = np.array([QUANT_ACT.get(str(q).strip().lower())
                    if isinstance(q, str) and str(q).strip().lower() not in MXFP4_EXPERT_SCHEMES else None
                    for q in scheme], dtype=object)
    return weight, act


def checkpoints(rows: pd.DataFrame) -> np.ndarray:
    """The model each normalized row ran, for the cost model: its catalog id, or, where the row's quantization
    columns say block-scaled FP8 (``fp8_block``) and the catalog's record of that id is not (a base id such as
    "zhipuai/GLM-5" measured from its FP8 release), the record with that scheme: the engines run block-scaled GEMMs
    for such a checkpoint (`inference.measured.BLOCK_FP8_GEMM_ENGINES`)."""
    import dataclasses

    from objectives import catalog
    models = rows["model"].to_numpy(object).copy()
    quant = [rows[c].to_numpy(object) for c in ("weight_quant", "moe_quant") if c in rows]
    block = np.zeros(len(rows), dtype=bool)
    for q in quant:
        block |= np.array([isinstance(x, str) and x.strip().lower() == "fp8_block" for x in q], dtype=bool)
    records: dict[Any, Any] = {}
    for i in np.flatnonzero(block):
        name = models[i]
        if name not in records:
            try:
                rec = catalog.model(name)
            except (KeyError, ValueError):
                records[name] = name           # left as given: `unpredictable` names the unknown model
                continue
            records[name] = rec if rec.quant_scheme == "fp8_block" else dataclasses.replace(
                rec, quant_scheme="fp8_block", quant_weight_dtype="fp8")
        models[i] = records[name]
    return models


def _column(rows: pd.DataFrame, name: str) -> pd.Series:
    """`rows[name]`, or NaN on every row where the frame has no such column (a hand-built frame)."""
    return rows[name] if name in rows.columns else pd.Series(np.nan, index=rows.index)


def _engine(rows: pd.DataFrame) -> np.ndarray:
    return rows["engine"].astype(str).str.lower().to_numpy(object)


def dated_labels(labels: np.ndarray, notes: np.ndarray) -> np.ndarray:
    """Each engine build label (`profiles.is_release`'s labels that are no version) that carries no date
    (`profiles.build_date`), dated from its row's note: the image tag the row ran where it extends the label with a
    date ('nightly-dev' run as lmsysorg/sglang:nightly-dev-cu13-20260317-1eea7448: that tag), else the label with
    the measurement's day ('glm5-hopper', measured=2026-03-19: 'glm5-hopper-measured-20260319', a bound the build
    is no newer than); a version, a dated label or a row noting neither as it is (`engine_releases` reads the
    last as the bare engine)."""
    from objectives.profiles import build_date, is_build_label
    out = np.asarray(labels, dtype=object).copy()
    for i, (lab, note) in enumerate(zip(out, notes)):
        if not lab or not is_build_label(lab) or build_date(lab) is not None:
            continue
        tag = re.search(r"image=\S+:(\S+)", note)
        day = re.search(r"measured=(\d{4})-(\d{2})-(\d{2})", note)
        if tag and tag.group(1).startswith(lab) and build_date(tag.group(1)) is not None:
            out[i] = tag.group(1)
        elif day:
            out[i] = f"{lab}-measured-{''.join(day.groups())}"
    return out


def engine_releases(rows: pd.DataFrame) -> np.ndarray:
    """Each row's engine with its release, as the cost model takes it (`inference.estimate`'s ``engine=``): the
    release named alone, 'vllm~=0.13.0' (`profiles.RELEASE_SEP`: what the engine does follows the release,
    `profiles.overlaps`, `inference.resolve.engine_behaviour`; the kernel tables are the GPU's newest, the bare
    name's), so a row of a release that predates a behaviour (vLLM's async scheduling before 0.14.0, TensorRT-LLM's
    overlap scheduler before 1.0) is priced without it. The bare name where ``engine_version`` is missing (a vLLM
    JSON result that records none and no ``--engine-version``: the newest release the model knows) or the engine
    is none `profiles.ENGINE_NAMES` holds (a published NIM row), or the version is no release (`profiles.is_release`:
    a published table's "1.1/1.2", a commit hash: the newest, as such a label always read). A build label without a
    date is dated from the row's note (`dated_labels`), so its kernel tables are the build's nearest
    (`profiles.dated_tables`); one its note cannot date (a Qwen3.5 B200 'nightly-dev' row noting no day) is the bare
    name: the newest tables and behaviour, what such a label read before `profiles.load` refused undated labels
    where a GPU's tables differ by build date, said here rather than left to the label."""
    from objectives.profiles import ENGINE_NAMES, RELEASE_SEP, build_date, is_build_label, is_release
    eng = _engine(rows)
    ver = (rows["engine_version"] if "engine_version" in rows.columns else pd.Series(np.nan, index=rows.index))
    text = ver.astype(object).where(ver.notna(), "").astype(str).str.strip().to_numpy(object)
    if "note" in rows.columns:
        text = dated_labels(text, rows["note"].astype(object).where(rows["note"].notna(), "").astype(str).to_numpy())
    ok = {t: is_release(t) and not (is_build_label(t) and build_date(t) is None) for t in set(text)}
    named = np.array([ok[t] for t in text], dtype=bool) & np.isin(eng, list(ENGINE_NAMES))
    return np.where(named, eng + RELEASE_SEP + text, eng).astype(object)


def catalog_gpus(names: Any) -> np.ndarray:
    """The catalog GPU of each row's `gpu`: a kernel-table system name ("h200_sxm": `profiles.GPU_OF_SYSTEM`), a
    catalog name or alias ("H200-SXM-141GB", "H200"; what `dse calibrate --gpu` and the published tables give) or a
    device name as nvidia-smi prints it ("NVIDIA H100 80GB HBM3": what a user records with --metadata); None where
    none resolves."""
    from objectives import catalog, profiles
    from objectives.catalog.names import device_name_candidates
    from objectives.profiles.collect import system_name
    out: dict[Any, str | None] = {}
    for n in pd.unique(pd.Series(names, dtype=object)):
        if n in profiles.GPU_OF_SYSTEM:
            out[n] = profiles.GPU_OF_SYSTEM[n]
            continue
        try:    # a catalog name, alias or device name ("NVIDIA H100 80GB HBM3": the catalog's one resolver)
            out[n] = catalog.gpu(str(n)).name
        except (KeyError, ValueError):
            # a device name the catalog does not know: the collector's device-name rule gives the system
            out[n] = profiles.GPU_OF_SYSTEM.get(system_name(str(n))) if device_name_candidates(str(n)) else None
    return np.array([out[n] for n in names], dtype=object)


def _gpu_families(names: Any) -> np.ndarray:
    """The catalog GPU family (`catalog.GPU.family`: "hopper", "blackwell", ...) of each row's `gpu`, resolved as
    `catalog_gpus` resolves it; "" where none resolves."""
    from objectives import catalog
    return np.array([catalog.gpu(g).family if g else "" for g in catalog_gpus(names)], dtype=object)


def collected(rows: pd.DataFrame) -> pd.Series:
    """The day each row's benchmark ran ("YYYY-MM-DD", the source's ``measured=`` field in `note`; "" where the
    source does not say): the grouping that separates a collection's own offsets from an engine's or a GPU's, e.g.
    ``mdape_by(d.assign(month=collected(d).str[:7]), ["engine", "gpu", "month"])``. Never an input to a prediction."""
    if "note" not in rows.columns:
        raise ValueError(f"collected needs the rows' 'note' column (read_measurements' layout); got "
                         f"{list(rows.columns)}")
    day = rows["note"].astype(str).str.extract(r"measured=(\d{4}-\d{2}-\d{2})", expand=False)
    return day.fillna("").rename("collected")


#: `launched_tp`: the silicon slice's vLLM runs labelled tp T x attention DP T x EP T x T (ids "tpT_epT") that were
#: measured before this day ran as TP T x EP T; those measured from it on as attention DP T x EP T (ISO date)
SILICON_VLLM_DP_SINCE = "2026-04-08"


def launched_tp(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with the silicon slice's expert-parallel labels that count more GPUs than the run had read as launched.

    SGLang: the aggregated rows labelled tp = T x E, moe_tp = T, moe_ep = E (T, E > 1, no attention DP) are
    ``--tp T --ep E`` on T GPUs: tp = T, expert TP T / E (SGLang's ``moe_tp_size = tp_size // ep_size``), n_gpus =
    T x pp. Every such label in the slice whose run another row also reports does so under (T, 1, E) with the same
    TTFT and TPOT: Qwen3.5 0.5.9 "TP 16, moe_tp 4, EP 4" on B200 is the TP 4 EP 4 run, "TP 64, moe_tp 8, EP 8" on
    H200 the TP 8 EP 8 one; read so, the B300 0.5.10.post1 NVFP4 "TP 4, moe_tp 2, EP 2" sweep is ``--tp 2 --ep 2``
    on two GPUs.

    vLLM: the aggregated rows labelled tp T x attention DP T x EP T x T (T > 1, expert TP 1; ids "tpT_epT", the
    batch the clients / T) are a "TP T, EP T, attention DP" entry whose exporter applied vLLM's EP = TP x DP
    (``--enable-expert-parallel``) to T twice: the run had T GPUs, as the KV pool's knees show. The runs measured
    before `SILICON_VLLM_DP_SINCE` are read TP T x EP T (no attention DP, the batch the clients): another export
    reports them so (the same TTFT and TPOT, or the same decode steps at every shared load), and the model agrees.
    Those measured from that day on (no copies) are read attention DP T x TP 1 x EP T, the reading their decode
    steps follow at high load; so are rows without a measured date. Figures: docs/profiles.md, thirty-second round.
    Other engines' rows and any other label are kept as given; the input frame is not modified. `read_silicon`
    applies it to every row it reads, so every reader of a silicon file sees the launched layout."""
    need = ("engine", "mode", "tp", "moe_tp", "moe_ep")
    if rows.empty or not all(c in rows.columns for c in need):
        return rows
    tp, mtp, ep = (rows[c].to_numpy(float) for c in ("tp", "moe_tp", "moe_ep"))
    adp = _column(rows, "attn_dp").fillna(1).to_numpy(float)
    pp = _column(rows, "pp").fillna(1).to_numpy(float)
    eng, agg = _engine(rows), (rows["mode"] == "agg").to_numpy()
    sgl = ((eng == "sglang") & agg & (mtp > 1) & (ep > 1) & (adp == 1) & np.isclose(tp, mtp * ep)
           & (np.mod(mtp, np.where(ep > 0, ep, 1.0)) == 0))
    vdp = (eng == "vllm") & agg & (tp > 1) & (adp == tp) & np.isclose(ep, tp * tp) & (mtp == 1)
    if not (sgl.any() or vdp.any()):
        return rows
    # rows without a measured day are late ("" sorts before any day, hence the explicit guard)
    day = collected(rows) if "note" in rows.columns else pd.Series("", index=rows.index)
    early = vdp & ((day != "") & (day < SILICON_VLLM_DP_SINCE)).to_numpy(bool)
    late = vdp & ~early
    out = rows.copy()
    out["tp"] = np.where(sgl, mtp, np.where(late, 1.0, tp))
    out["moe_tp"] = np.where(sgl, mtp / np.where(sgl, ep, 1.0), mtp)
    out["moe_ep"] = np.where(vdp, tp, ep)
    if "attn_dp" in out.columns:
        out.loc[early, "attn_dp"] = 1.0
    if "batch_size" in out.columns:
        out.loc[early, "batch_size"] = out["batch_size"].to_numpy(float)[early] * tp[early]
    if "n_gpus" in out.columns:
        hit = sgl | vdp
        out.loc[hit, "n_gpus"] = (np.where(sgl, mtp, tp) * pp)[hit]
    return out


def _empty_frame(n: int) -> dict[str, Any]:
    return {c: (np.full(n, None, dtype=object) if c in _STR_COLUMNS else np.full(n, np.nan)) for c in COLUMNS}


def _finish(cols: dict[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame({c: cols[c] for c in COLUMNS})
    df["source_row"] = df["source_row"].astype("int64")
    return df


# ---------------------------------------------------------------------------------------------------- silicon


def read_silicon(path: str | Path) -> pd.DataFrame:
    """aiconfigurator-core's silicon CSV -> normalized rows (see the module docstring), the expert-parallel labels
    that count more GPUs than the run had read as launched (`launched_tp`)."""
    p = Path(path)
    df = pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""])
    _require_columns(df, p, SILICON_REQUIRED, "silicon")
    n = len(df)
    out = _empty_frame(n)
    out["source_file"][:] = str(p)
    out["source_row"] = np.arange(1, n + 1)
    out["layout"][:] = "silicon"
    mode = df["mode"].fillna("").str.strip().str.lower()
    bad = ~mode.isin(["agg", "disagg"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise _fail(p, i + 1, "mode", f"{df['mode'].iloc[i]!r}; valid: 'agg', 'disagg'")
    agg, dis = (mode == "agg").to_numpy(), (mode == "disagg").to_numpy()
    for col in ("model_path", "system", "backend"):
        empty = df[col].isna().to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise _fail(p, i + 1, col, "empty, a value is required here")
    eng = df["backend"].str.strip().str.lower()
    for i, e in enumerate(eng):
        if e not in ENGINES:
            raise _fail(p, i + 1, "backend", f"unknown engine {df['backend'].iloc[i]!r}; valid: {sorted(ENGINES)}")
    out["engine"] = eng.map(ENGINES).to_numpy(object)
    out["engine_version"] = df["backend_version"].to_numpy(object)
    out["model"] = df["model_path"].to_numpy(object)
    out["gpu"] = df["system"].to_numpy(object)
    out["mode"] = mode.to_numpy(object)
    out["isl"] = _numeric(df, p, "isl", True, True)
    out["osl"] = _numeric(df, p, "osl", True, True)
    out["ttft_ms"] = _numeric(df, p, "silicon_ttft_ms", True, True)
    out["tpot_ms"] = _numeric(df, p, "silicon_tpot_ms", True, True)
    pool = {"tp": "tp_size", "pp": "pp_size", "attn_dp": "attention_dp_size", "moe_tp": "moe_tp_size",
            "moe_ep": "moe_ep_size", "batch_size": "batch_size"}

    def shape(pre: str, rows: np.ndarray) -> dict[str, np.ndarray]:
        """A pool's layout on `rows`: its TP size is required; an empty PP, attention-DP or expert-parallel size
        is 1 (a dense model's rows need not fill the MoE columns), an empty expert TP the rest of the pool's
        GPUs (tp x attention DP / EP); a 0 in those optional sizes or the batch is read as empty (an exporter's
        "not used"), a negative one refused; NaN on the other rows."""
        optional = ("pp", "attn_dp", "moe_tp", "moe_ep", "batch_size")
        v = {}
        for k, col in pool.items():
            x = _numeric(df, p, pre + col, rows & (k == "tp"), True)
            if k in optional:
                neg = rows & (x < 0)
                if neg.any():
                    i = int(np.flatnonzero(neg)[0])
                    raise _fail(p, i + 1, pre + col, f"{df[pre + col].iloc[i]!r} must be positive (0 or empty: "
                                "not used)")
                x = np.where(x == 0, np.nan, x)
            v[k] = x
        for k in ("pp", "attn_dp", "moe_ep"):
            v[k] = np.where(np.isnan(v[k]), 1.0, v[k])
        v["moe_tp"] = np.where(np.isnan(v["moe_tp"]), np.maximum(v["tp"] * v["attn_dp"] / v["moe_ep"], 1.0),
                               v["moe_tp"])
        return {k: np.where(rows, x, np.nan) for k, x in v.items()}
    for k, x in shape("", agg).items():
        out[k] = x
    for pre in ("prefill", "decode"):
        # worker counts and batches may be absent (the rows then do not say what was deployed)
        out[f"{pre}_workers"] = np.where(dis, _numeric(df, p, f"{pre}_num_workers", False, True, where=dis), np.nan)
        for k, x in shape(f"{pre}_", dis).items():
            out[f"{pre}_{k}"] = x
    # concurrency: silicon_concurrency= in the data source, else _c<N>_ in the id, else (agg) the batch per
    # attention-DP rank times the ranks
    src = df["silicon_data_source"].fillna("")
    c_src = pd.to_numeric(src.str.extract(r"silicon_concurrency=(\d+)")[0], errors="coerce").to_numpy(float)
    c_id = pd.to_numeric(df["id"].fillna("").str.extract(r"_c(\d+)_")[0], errors="coerce").to_numpy(float)
    conc = np.where(np.isnan(c_src), c_id, c_src)
    conc = np.where(np.isnan(conc) & agg, out["batch_size"] * out["attn_dp"], conc)
    if np.isnan(conc).any():
        i = int(np.flatnonzero(np.isnan(conc))[0])
        raise _fail(p, i + 1, "silicon_data_source",
                    "no concurrency: neither 'silicon_concurrency=<N>' here nor '_c<N>_' in column 'id'"
                    + (" nor a 'batch_size'" if agg[i] else ""))
    out["concurrency"] = conc
    out["batch_size"] = np.where(agg & np.isnan(out["batch_size"]), conc / out["attn_dp"], out["batch_size"])
    # quantization: the catalog dtype plus the scheme; empty schemes mean unquantized (the `precision` column)
    for kind, col in (("weight", "gemm_quant_mode"), ("moe", "moe_quant_mode")):
        scheme = df[col].where(df[col].notna(), df["precision"])
        if scheme.isna().any():
            i = int(np.flatnonzero(scheme.isna().to_numpy())[0])
            raise _fail(p, i + 1, col, "empty and column 'precision' is empty too")
        out[f"{kind}_quant"] = scheme.str.strip().to_numpy(object)
        out[f"{kind}_dtype"] = np.array([_dtype_of(s, p, i + 1, col) for i, s in enumerate(scheme)], dtype=object)
    # the KV cache: the harness's own rule (`SILICON_FP8_KV_QUANT`), not the engines' "auto", except on the GPU
    # families whose rows kept "auto" (`SILICON_AUTO_KV_FAMILIES`)
    fp8_kv = (np.isin(np.char.lower(out["weight_quant"].astype(str)), SILICON_FP8_KV_QUANT) | np.isin(
        np.char.lower(out["moe_quant"].astype(str)), SILICON_FP8_KV_QUANT)) & ~np.isin(
        _gpu_families(out["gpu"]), SILICON_AUTO_KV_FAMILIES)
    out["kv_dtype"] = np.array(["fp8" if f else None for f in fp8_kv], dtype=object)
    out["n_gpus"] = np.where(agg, out["tp"] * out["pp"] * out["attn_dp"],
                             sum(out[f"{q}_workers"] * out[f"{q}_tp"] * out[f"{q}_pp"] * out[f"{q}_attn_dp"]
                                 for q in ("prefill", "decode")))
    out["kind"][:] = "serving"
    out["note"] = src.to_numpy(object)
    return launched_tp(_finish(out))


# ---------------------------------------------------------------------------------------------------- vLLM JSON

#: deployment keys taken from --metadata entries in the JSON or from the keyword defaults, with their aliases
_META_ALIASES: Mapping[str, tuple[str, ...]] = {
    "gpu": ("gpu", "system", "gpu_type"), "tp": ("tp", "tp_size", "tensor_parallel_size"),
    "pp": ("pp", "pp_size", "pipeline_parallel_size"),
    # the engine's data-parallel ranks behind one endpoint (vllm serve --data-parallel-size, SGLang --dp-size): each
    # schedules its own requests, attention data parallel for an MoE model (the experts span them), for a dense
    # model the same as replicas
    "attn_dp": ("attn_dp", "attention_dp_size", "dp_attention", "data_parallel_size", "dp_size", "dp"),
    "moe_tp": ("moe_tp", "moe_tp_size"), "moe_ep": ("moe_ep", "moe_ep_size", "ep", "ep_size"),
    # vllm serve --enable-expert-parallel: the experts spread over all tp x data-parallel ranks (EP = tp x dp)
    "expert_parallel": ("enable_expert_parallel", "expert_parallel"),
    "engine": ("engine",), "engine_version": ("engine_version", "vllm_version", "version"),
    "weight_dtype": ("weight_dtype", "quantization", "dtype"), "moe_dtype": ("moe_dtype",),
    "kv_dtype": ("kv_dtype", "kv_cache_dtype"), "mode": ("mode",), "model": ("model",),
    **{f"{p}_{f}": (f"{p}_{f}",) for p in ("prefill", "decode") for f in POOL_FIELDS},
}
_META_INT = {"tp", "pp", "attn_dp", "moe_tp", "moe_ep"} | {f"{p}_{f}" for p in ("prefill", "decode")
                                                          for f in POOL_FIELDS}


def _is_result(obj: Any) -> bool:
    """Whether a JSON value is a vllm bench serve result object (its request counts and mean latencies)."""
    return isinstance(obj, dict) and "completed" in obj and "mean_ttft_ms" in obj


def _result_files(folder: Path) -> list[Path]:
    """The result files under `folder`, its subfolders too (`vllm bench sweep serve -o DIR` writes
    DIR/<timestamp>/<combination>/run=N.json): every *.json but the ``.pytorch.json`` companions and a sweep's
    ``summary.json`` (the list of the run files beside it: read, it would count each run twice)."""
    out = []
    for f in sorted(folder.rglob("*.json")):
        if f.name.endswith(".pytorch.json"):
            continue
        if f.name == "summary.json" and any(f.parent.glob("run=*.json")):
            continue
        out.append(f)
    return out


def _json_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects in a --save-result file (one) or an --append-result file (one per line)."""
    text = path.read_text(encoding="utf-8")
    dec = json.JSONDecoder()
    recs: list[dict[str, Any]] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: record {len(recs) + 1}: not valid JSON ({e.msg} at line {e.lineno} column "
                             f"{e.colno})") from None
        if isinstance(obj, list) and obj and all(_is_result(x) for x in obj):
            recs.extend(obj)   # `vllm bench sweep serve`'s summary.json: the runs of one combination
            continue
        if isinstance(obj, list):
            raise ValueError(f"{path}: record {len(recs) + 1}: a JSON list, not a vllm bench serve result object "
                             "(a '.pytorch.json' companion file? pass the result file itself)")
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: record {len(recs) + 1}: not a JSON object")
        recs.append(obj)
    if not recs:
        raise ValueError(f"{path}: empty file, no vllm bench serve result in it")
    return recs


def _meta_value(key: str, rec: Mapping[str, Any], defaults: Mapping[str, Any]) -> Any:
    for alias in _META_ALIASES[key]:
        # `vllm bench sweep serve` merges its parameters as the sweep file spells them ("tensor-parallel-size")
        for k in dict.fromkeys((alias, alias.replace("_", "-"))):
            if k in rec and rec[k] not in (None, ""):
                return rec[k]
    for alias in _META_ALIASES[key]:
        if alias in defaults and defaults[alias] is not None:
            return defaults[alias]
    return None


#: KV-cache formats a result may record (vllm serve --kv-cache-dtype, SGLang --kv-cache-dtype; "auto": the
#: model's dtype) -> the catalog dtype the cost model stores the cache in
KV_DTYPES: Mapping[str, str | None] = {
    "auto": None, "bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "fp8": "fp8", "fp8_e4m3": "fp8", "fp8_e5m2": "fp8", "fp8_inc": "fp8", "fp4": "fp4", "nvfp4": "fp4",
    "int8": "int8"}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def _checkpoint_format(model: str) -> str | None:
    """The weight format `vllm serve <model>` runs when not told otherwise: the checkpoint's own quantization
    scheme (its quantization_config / hf_quant_config.json, as the catalog read it), "bf16" for an unquantized
    one; None for a model the catalog does not know."""
    from objectives import catalog
    try:
        m = catalog.model(model)
    except (KeyError, ValueError):
        return None
    if not m.quant_weight_dtype:
        return "bf16"
    return m.quant_scheme if quant_dtype(m.quant_scheme) == m.quant_weight_dtype else m.quant_weight_dtype


def _engine_of(engine: Any, path: Path, n: int) -> tuple[str, str | None]:
    """(engine, version or None) of a result's engine ("vllm", "TensorRT-LLM", "vllm@0.11.0", "sglang==0.5.14",
    "vllm~=0.13.0": the forms `inference.estimate`'s engine= takes); anything else raises naming the file, the record and the valid
    names."""
    from objectives.profiles import engine_key, engine_release, resolve_engine
    try:
        key, _ = resolve_engine(engine)
        version = engine_release(engine)     # 'vllm~=0.13.0' names its release too (no tables of its own)
    except ValueError as exc:
        if engine_key(engine) in ENGINES.values():   # a known engine with a release that is none ('vllm~=abc')
            raise _fail(path, n, "engine", str(exc)) from None
        key, version = "", None
    if key not in ENGINES.values():
        raise _fail(path, n, "engine", f"unknown engine {engine!r}; valid: {sorted(ENGINES)} (optionally with a "
                    "version: 'vllm==0.11.0', 'vllm@0.11.0' or 'vllm~=0.11.0')")
    return key, version


def _kv_dtype_of(kv: Any, path: Path, n: int) -> str | None:
    """The catalog dtype of a recorded KV-cache format (`KV_DTYPES`; None for "auto"), or ValueError naming the
    file, the record and the valid formats."""
    s = str(kv).strip().lower()
    if s not in KV_DTYPES:
        raise _fail(path, n, "kv_dtype", f"unknown KV-cache dtype {kv!r}; valid: {list(KV_DTYPES)}")
    return KV_DTYPES[s]


def _flag(v: Any, path: Path, n: int, column: str) -> bool:
    """A --metadata flag ("true" / "false", any case; a JSON bool) as a bool; None: False."""
    if v is None or isinstance(v, bool):
        return bool(v)
    s = str(v).strip().lower()
    if s not in _TRUE + _FALSE:
        raise _fail(path, n, column, f"{v!r} is not a flag; valid: {', '.join(_TRUE + _FALSE[:-1])}")
    return s in _TRUE


def _vllm_row(rec: Mapping[str, Any], path: Path, n: int, defaults: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {c: (None if c in _STR_COLUMNS else np.nan) for c in COLUMNS}
    row.update(source_file=str(path), source_row=n, layout="vllm_json", kind="serving")
    from .calibrate import FORMAT as PROFILE_FORMAT
    if rec.get("format") == PROFILE_FORMAT:
        raise ValueError(f"{path}: a calibrated profile (dse calibrate's output), not a vllm bench serve result: "
                         "give it as profile= (--profile), not as results to fit")
    if "model_id" not in rec and "mean_ttft_ms" not in rec:
        raise _fail(path, n, "model_id", "missing: this JSON is not a vllm bench serve --save-result file")

    def num(key: str, required: bool = True) -> float:
        if key not in rec or rec[key] is None:
            if required:
                raise _fail(path, n, key, "missing from the result (needed; rerun vllm bench serve with the "
                            "default --percentile-metrics ttft,tpot,itl)" if key.startswith("mean_") else
                            "missing from the result")
            return math.nan
        v = rec[key]
        if isinstance(v, str) and v.strip().lower() == "inf":
            return math.inf
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise _fail(path, n, key, f"{v!r} is not a number")
        try:
            return float(v)
        except ValueError:
            raise _fail(path, n, key, f"{v!r} is not a number") from None

    vals = {k: num(k) for k in VLLM_REQUIRED}
    if not vals["completed"] > 0:
        raise _fail(path, n, "completed", f"{rec['completed']!r}: no completed request, nothing was measured")
    for k in ("mean_ttft_ms", "mean_tpot_ms"):
        if not (math.isfinite(vals[k]) and vals[k] > 0):
            raise _fail(path, n, k, f"{rec[k]!r} must be positive" + (
                " (vllm bench serve writes a TPOT of 0 when no request produced more than one output token: "
                "benchmark with --output-len 2 or more)" if k == "mean_tpot_ms" and vals[k] == 0 else ""))
    row["isl"] = vals["total_input_tokens"] / vals["completed"]
    row["osl"] = vals["total_output_tokens"] / vals["completed"]
    row["ttft_ms"], row["tpot_ms"] = vals["mean_ttft_ms"], vals["mean_tpot_ms"]
    row["itl_ms"], row["e2e_ms"] = num("mean_itl_ms", False), num("mean_e2el_ms", False)
    row["throughput_tok_s"] = num("output_throughput", False)
    row["request_throughput"] = num("request_throughput", False)
    rate = num("request_rate", False)
    conc = num("max_concurrency", False)
    prompts = num("num_prompts", False)
    if rec.get("ramp_up_strategy") not in (None, ""):
        # --ramp-up-strategy: the rate ramps from --ramp-up-start-rps to --ramp-up-end-rps (vLLM writes the
        # request rate "inf" it requires then): neither one offered rate nor a closed loop of clients
        rate = conc = math.nan
    elif math.isfinite(rate):
        # an offered rate: a --max-concurrency cap bounds the requests in flight, the rate sets them (a server
        # faster than the rate holds fewer): not a closed loop of that many clients
        conc = math.nan
    elif math.isnan(conc) and math.isinf(rate):  # every prompt issued at once: all of them in flight
        conc = prompts
    elif prompts > 0:  # a cap above the prompts sent: no more than those were ever in flight
        conc = min(conc, prompts)
    row["request_rate"], row["concurrency"] = rate, conc
    meta = {k: _meta_value(k, rec, defaults) for k in _META_ALIASES}
    model = meta["model"] if meta["model"] is not None else rec.get("model_id")
    if meta["weight_dtype"] is None and model:
        meta["weight_dtype"] = _checkpoint_format(str(model))
        if meta["weight_dtype"] is None:  # the checkpoint's format comes from the catalog, which lacks the model
            raise _fail(path, n, "model" if meta["model"] is not None else "model_id",
                        f"{str(model)!r} is not in the catalog, so neither its checkpoint's format nor its shapes "
                        "are known: name its config.json or checkpoint folder as the model (--metadata model=PATH, "
                        "or model=PATH), which gives both, or register it (catalog.register_model); weight_dtype= "
                        "alone reads the row, which is then not predicted")
    missing = [k for k in ("gpu", "tp", "weight_dtype") if meta[k] is None] + ([] if model else ["model"])
    if missing:
        raise _fail(path, n, missing[0],
                    f"the result does not say {missing}: give them to dse calibrate ("
                    + " ".join(f"--{k.replace('_', '-')} ..." for k in missing) + "), or to read_measurements ("
                    + ", ".join(f"{k}=..." for k in missing) + "), or record them with vllm bench serve "
                    + " ".join(f"--metadata {k}=..." for k in missing))
    from objectives import catalog
    try:    # a GPU the catalog lacks: its error, with the close matches, not rows left out unpredicted
        catalog.gpu(str(meta["gpu"]))
    except catalog.CatalogError as exc:
        raise _fail(path, n, "gpu", str(exc)) from None
    for k in _META_INT:
        v = meta[k]
        if v is None:
            continue
        try:
            fv = float(v)
        except (TypeError, ValueError):
            raise _fail(path, n, k, f"{v!r} is not a number") from None
        if k.endswith("batch_size"):  # a batch per rank may be a mean
            if not fv > 0:
                raise _fail(path, n, k, f"{v!r} must be a positive count")
        elif not (fv >= 1 and fv == int(fv)):  # GPUs and workers come whole
            raise _fail(path, n, k, f"{v!r} must be a whole number >= 1")
        meta[k] = fv
    mode = str(meta["mode"] or "agg").strip().lower()
    if mode not in ("agg", "disagg"):
        raise _fail(path, n, "mode", f"{meta['mode']!r}; valid: 'agg', 'disagg'")
    backend = str(rec.get("backend") or rec.get("endpoint_type") or "").strip().lower()
    if meta["engine"] is None and backend in OTHER_SERVERS:
        raise _fail(path, n, "backend", f"{backend!r}: the result was measured on a server this model has no kernel "
                    f"tables for (engines: {', '.join(sorted(set(ENGINES.values())))}); if that server ran one of "
                    "them, say which with --metadata engine=<name> (or engine= / --engine)")
    engine = meta["engine"] if meta["engine"] is not None else BACKEND_ENGINES.get(backend, "vllm")
    name, version = _engine_of(engine, path, n)
    if meta["engine_version"] is not None:  # an engine_version key wins over a version inside the engine's name
        version = str(meta["engine_version"]).strip()
    row.update(model=str(model), gpu=str(meta["gpu"]), engine=name, mode=mode, engine_version=version)
    wq = str(meta["weight_dtype"]).strip()
    row["weight_quant"], row["weight_dtype"] = wq, _dtype_of(wq, path, n, "weight_dtype")
    mq = str(meta["moe_dtype"]).strip() if meta["moe_dtype"] is not None else wq
    row["moe_quant"], row["moe_dtype"] = mq, _dtype_of(mq, path, n, "moe_dtype")
    if meta["kv_dtype"] is not None:
        row["kv_dtype"] = _kv_dtype_of(meta["kv_dtype"], path, n)
    expert_parallel = _flag(meta["expert_parallel"], path, n, "enable_expert_parallel")
    if mode == "agg":
        row["tp"] = meta["tp"]
        for k in ("pp", "attn_dp"):
            row[k] = meta[k] if meta[k] is not None else 1.0
        gpus = row["tp"] * row["attn_dp"]   # the GPUs a replica's experts spread over
        row["moe_ep"] = meta["moe_ep"] if meta["moe_ep"] is not None else gpus if expert_parallel else 1.0
        # expert TP: the rest of those GPUs (as the silicon reader fills it); given, it must cover them with the EP
        row["moe_tp"] = meta["moe_tp"] if meta["moe_tp"] is not None else max(gpus / row["moe_ep"], 1.0)
        if meta["moe_tp"] is not None and row["moe_tp"] * row["moe_ep"] != gpus:
            raise _fail(path, n, "moe_tp", f"moe_tp x moe_ep = {row['moe_tp']:g} x {row['moe_ep']:g} = "
                        f"{row['moe_tp'] * row['moe_ep']:g}, not the tp x attn_dp = {row['tp']:g} x "
                        f"{row['attn_dp']:g} = {gpus:g} GPUs the experts spread over")
        row["n_gpus"] = row["tp"] * row["pp"] * row["attn_dp"]
    else:
        for pre in ("prefill", "decode"):
            for f in POOL_FIELDS:
                v = meta[f"{pre}_{f}"]
                row[f"{pre}_{f}"] = v if v is not None else (1.0 if f in ("pp", "attn_dp", "moe_tp") else np.nan)
            if math.isnan(row[f"{pre}_tp"]):
                raise _fail(path, n, f"{pre}_tp", "missing: a disagg result needs prefill_tp and decode_tp "
                            "(--metadata or keyword defaults)")
            if math.isnan(row[f"{pre}_moe_ep"]):
                row[f"{pre}_moe_ep"] = 1.0
        row["n_gpus"] = sum(row[f"{q}_workers"] * row[f"{q}_tp"] * row[f"{q}_pp"] * row[f"{q}_attn_dp"]
                            for q in ("prefill", "decode"))
    row["note"] = str(rec.get("label") or rec.get("date") or "")
    return row


def read_vllm_json(path: str | Path, **defaults: Any) -> pd.DataFrame:
    """`vllm bench serve --save-result` JSON (a file or a directory of them) -> normalized rows."""
    p = Path(path)
    if p.is_dir():
        files = _result_files(p)
        if not files:
            raise ValueError(f"{p}: no vllm bench serve result (*.json) in this directory or below")
    elif p.exists():
        files = [p]
    else:
        raise FileNotFoundError(f"{p}: no such file or directory")
    unknown = set(defaults) - {a for al in _META_ALIASES.values() for a in al}
    if unknown:
        raise TypeError(f"read_measurements: unknown keyword(s) {sorted(unknown)}; valid: {sorted(_META_ALIASES)}")
    from .calibrate import FORMAT as PROFILE_FORMAT
    rows = []
    for f in files:
        recs = _json_records(f)
        if p.is_dir() and len(recs) == 1 and recs[0].get("format") == PROFILE_FORMAT:
            # a calibrated profile `dse calibrate -o` wrote into the results folder: no measurement
            log.info("%s: a calibrated profile (dse calibrate's output), not a result: passed over", f)
            continue
        for n, rec in enumerate(recs, start=1):
            rows.append(_vllm_row(rec, f, n, defaults))
    if not rows:
        raise ValueError(f"{p}: no vllm bench serve result in it (only calibrated profiles)")
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for c in COLUMNS:
        if c not in _STR_COLUMNS:
            df[c] = df[c].astype(float)
    df["source_row"] = df["source_row"].astype("int64")
    return df


# ---------------------------------------------------------------------------------------------------- published

_PUBLISHED_METRICS = {"ttft_ms": "ttft_ms", "itl_ms": "itl_ms", "e2e_latency_ms": "e2e_ms",
                      "throughput_out_tok_s": "throughput_tok_s", "throughput_out_tok_s_per_gpu":
                      "throughput_tok_s_gpu", "requests_per_s": "request_throughput"}
_PUBLISHED_KEY = ["source_url", "source_note", "model", "gpu", "n_gpus", "tp", "pp", "weight_dtype", "act_dtype",
                  "kv_dtype", "engine", "batch_size", "concurrency", "input_len", "output_len"]


def read_published(path: str | Path | None = None) -> pd.DataFrame:
    """The published-measurements CSV (objectives.calibration.data's reader) -> one row per deployment/load point."""
    from . import data
    p = data.data_path(path)
    raw = pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""])
    _require_columns(raw, p, PUBLISHED_REQUIRED, "published")
    for col, req in (("value", True), ("n_gpus", False), ("tp", False), ("pp", False), ("batch_size", False),
                     ("concurrency", False), ("input_len", False), ("output_len", False)):
        _numeric(raw, p, col, req, positive=req)
    metric = raw["metric"].fillna("")
    bad = ~metric.isin(list(_PUBLISHED_METRICS))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise _fail(p, i + 1, "metric", f"{raw['metric'].iloc[i]!r}; valid: {sorted(_PUBLISHED_METRICS)}")
    df, _ = data.load(p)
    unknown = (df["engine_family"] == "").to_numpy()
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise _fail(p, i + 1, "engine", f"{df['engine'].iloc[i]!r}: unknown engine; a label starts with the engine's "
                    "name and its version: 'TensorRT-LLM 1.0', 'vLLM 0.11.0', 'SGLang 0.5.9' or 'NVIDIA NIM 1.8.0'")
    df = df.assign(_row=np.arange(1, len(df) + 1))
    groups = df.groupby(_PUBLISHED_KEY, dropna=False, sort=False)
    rows = []
    for _, g in groups:
        first = g.iloc[0]
        row: dict[str, Any] = {c: (None if c in _STR_COLUMNS else np.nan) for c in COLUMNS}
        dup = g["metric"].duplicated()
        if dup.any():
            raise _fail(p, int(g["_row"][dup].iloc[0]), "metric",
                        f"{g['metric'][dup].iloc[0]!r} given twice for the same deployment and load point "
                        f"(also row {int(g['_row'][g['metric'] == g['metric'][dup].iloc[0]].iloc[0])})")
        for m, v in zip(g["metric"], g["value"]):
            row[_PUBLISHED_METRICS[m]] = float(v)
        row["tpot_ms"] = row["itl_ms"]
        eng = str(first["engine"])
        # the version right after the engine's name ("TensorRT-LLM 0.13.0", "vLLM 0.5.4"); none for
        # "TensorRT-LLM (MLPerf v4.1)", whose numbers are the benchmark's, not the engine's
        ver = re.match(r"^\D*?\s(\d[\w.+/-]*)", eng)
        note = str(first["source_note"]) if pd.notna(first["source_note"]) else ""
        rate_m = re.search(r"QPS\s*=\s*([\d.]+)|request rate (inf|[\d.]+)", note, flags=re.I)
        rate = np.nan
        if rate_m:
            r = rate_m.group(1) or rate_m.group(2)
            rate = math.inf if r.lower() == "inf" else float(r)
        wd = first["weight_dtype"]
        row.update(source_file=str(p), source_row=int(g["_row"].min()), layout="published", model=first["model"],
                   gpu=first["gpu"], engine=first["engine_family"], engine_version=ver.group(1) if ver else None,
                   mode="agg", tp=first["tp"], pp=first["pp"], concurrency=first["concurrency"],
                   request_rate=rate, batch_size=first["batch_size"], isl=first["input_len"],
                   osl=first["output_len"], weight_dtype=None if pd.isna(wd) else str(wd),
                   weight_quant=None if pd.isna(wd) else str(wd), moe_dtype=None if pd.isna(wd) else str(wd),
                   moe_quant=None if pd.isna(wd) else str(wd),
                   kv_dtype=None if pd.isna(first["kv_dtype"]) else str(first["kv_dtype"]),
                   n_gpus=first["n_gpus"], kind=first["kind"], note=note)
        rows.append(row)
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    for c in COLUMNS:
        if c not in _STR_COLUMNS:
            out[c] = out[c].astype(float)
    out["source_row"] = out["source_row"].astype("int64")
    return out.sort_values("source_row", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------- entry


def detect_layout(path: str | Path) -> str:
    """'silicon' | 'vllm_json' | 'published' from a path (directory or .json: vllm_json; CSV: by its header)."""
    p = Path(path)
    if p.is_dir() or p.suffix.lower() in (".json", ".jsonl"):
        return "vllm_json"
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    with p.open(encoding="utf-8") as fh:
        head = fh.read(4096)
    if head.lstrip().startswith("{"):
        return "vllm_json"
    header = {h.strip().strip('"') for h in head.splitlines()[0].split(",")} if head else set()
    # a layout's marking columns: a file with one of them is that layout, its reader naming any it lacks (a silicon
    # CSV without its TPOT column is not of an unknown layout)
    if header & {"silicon_ttft_ms", "silicon_tpot_ms", "silicon_data_source"}:
        return "silicon"
    if "source_url" in header or {"metric", "value"} <= header:
        return "published"
    raise ValueError(f"{p}: row 0 (header): unknown layout; a silicon CSV has columns silicon_ttft_ms and "
                     "silicon_tpot_ms, a published-measurements CSV has source_url, metric and value, a vllm bench "
                     f"serve result is JSON. Pass layout= one of {list(LAYOUTS)}")


def read_measurements(path: str | Path, *, layout: str | None = None, **defaults: Any) -> pd.DataFrame:
    """Read end-to-end serving measurements into normalized rows (columns: ``COLUMNS``, see the module docstring).

    `layout`: "silicon", "vllm_json" or "published" (None: detected). `defaults` fill the deployment a vLLM JSON
    does not record (gpu=, tp=, weight_dtype=, engine=, engine_version=, pp=, attn_dp=, moe_tp=, moe_ep=, moe_dtype=,
    kv_dtype=, mode=, model=, prefill_*/decode_* for disagg); `--metadata` entries in the file take precedence.
    """
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: unknown; valid: {list(LAYOUTS)}")
    lay = layout or detect_layout(path)
    if lay != "vllm_json" and defaults:
        raise TypeError(f"read_measurements: keyword(s) {sorted(defaults)} apply to vLLM JSON results only; the "
                        f"{lay!r} layout records its deployments itself")
    if lay == "silicon":
        return read_silicon(path)
    if lay == "published":
        return read_published(path)
    return read_vllm_json(path, **defaults)
