"""Raw kernel tables -> a compact `KernelProfile` (.npz), from aiconfigurator-core or the PyTorch collector.

Both sources share one layout, `<root>/<system>/<op>/<engine>/<version>/<table>.parquet`, with the column names
of aiconfigurator-core's tables (latency in ms). What is kept, per (system, engine, version):

- GEMM latency by (m, n, k) per GEMM dtype (bf16, fp8 per-tensor, fp8 block-scaled, fp4/NVFP4, weight-only int);
  m thinned to powers of two and a few midpoints (the +1 tile-edge rows are dropped), n and k kept whole;
  the fastest kernel per cell (what the engine's heuristics choose from). Where the engine's fp8 rows time a
  dynamic activation scale (TensorRT-LLM) also `gemm.fp8_static`: those rows less the scale's measured overhead
  (`static_fp8_gemm`), the GEMM a checkpoint with static activation scales runs. Where the engine's fp4 rows
  include the activation's NVFP4 quantize kernel that its serving path fuses into the norm / all-reduce / attention
  (TensorRT-LLM) also `gemm.fp4_fused`: those rows less that kernel (`fused_fp4_gemm`).
- Context attention by (batch, input length, query heads per GPU) and generation attention by (batch, KV length,
  KV heads per GPU), head_dim 128, full attention, per KV-cache dtype (the median over the other head count).
  Context grids stop at a total token count (batch x length); a length's larger batches are extended in
  proportion to the prompts (`grid.extend_proportional`), as its work adds up once the GPU is full.
- The engine's own all-reduce (CUDA-graph variant where both were measured) by (GPUs, message elements), and
  NCCL all-reduce / all-gather / reduce-scatter / all-to-all (half precision) from the newest NCCL table.
- MLA attention kernels (absorbed decode, prefill) of DeepSeek-V3's shape by (batch, length, query heads per GPU)
  per KV-cache dtype: the engine's own table, else another engine's on the same GPU (the kernels are shared:
  vLLM's tables hold only whole MLA modules, SGLang and TensorRT-LLM both run the TRT-LLM MLA kernels).
- The engine's fused MoE layer (routing, grouped expert GEMMs, combine) per weight format, one curve over the
  tokens entering the layer per measured (hidden, expert FFN, top-k, experts, expert TP, EP) shape: the power-law
  routing skew engines see in practice (alpha 1.01) where measured, else balanced routing; fastest kernel per cell.
  Beside it the layer an expert-parallel load balancer leaves (`moe_bal.*`): the balanced-routing curve, and where
  TensorRT-LLM's wide-EP table timed its own balancer at the shape and EP size, the skewed curve times that gain.
- Whole sparse-attention modules (projections included) per architecture and KV-cache dtype: DeepSeek sparse
  attention (`dsa_*`), DeepSeek-V4 (`dsv4_*`) and MiniMax sparse attention (`msa_*`: MiniMax-M3, SGLang and vLLM).
- DeepEP dispatch / combine inside one node (EP over its 8 GPUs) by (tokens per rank) per measured (hidden,
  top-k, experts): low-latency kernels (decode) and normal kernels (prefill, fastest SM setting per cell). Measured
  under SGLang; the same library kernels stand in for every engine's profile on that GPU.
- SGLang's DeepEP MoE runner (`moe_deepep_{ll,normal}[_bal].*`, SGLang profiles only): one EP rank's experts on the
  tokens dispatched to it, keyed as the fused-MoE layer, at DeepSeek-V3's shape and the families of its format,
  top-k and expert count carried from it (`deepep_moe_tables`).
- Linear-attention layers: Gated DeltaNet's conv + recurrence by (tokens, value heads per GPU), Kimi Delta
  Attention's (`kda_tables`: prompts by batch and length, decode steps by sequences, per value heads per GPU;
  TensorRT-LLM's profile on SGLang's tables, `KDA_LANES`), and Mamba-2's short conv (`mamba2_tables`: prompts by
  batch and length, decode steps by sequences, per conv channels per GPU; TensorRT-LLM's tables in every engine's
  profile, `MAMBA2_LANES`).

Every table keeps which of its cells were measured (`Table.covered`: the collector's cells and the gaps between
them, `grid.covered_cells`; stored bit-packed, only where some cell was filled beyond them): the trend, per-prompt
and edge fills are extrapolations, and a result row whose lookups reach them says so (`inference.measured.
beyond_reach`). Profile files written before it have none and count every cell as measured.

    python -m objectives.profiles.build [--root DIR [--force]] [--out DIR]   # default: the installed aiconfigurator-core
    python -m objectives.profiles.build --dated-root DIR [--out DIR]         # the `DATED_TABLES` builds' profiles

A `DATED_TABLES` build (an engine's main between releases whose tables the wheel lacks: SGLang's 2026-04-16 DSA
modules) ships as a profile of its own version, its release's profile with those tables replaced; its files come from
the repository commit recorded there: `git -C aiconfigurator archive <commit> aic-core/src/aiconfigurator_core/
systems/data/{b200_sxm,h200_sxm}/sparse_attention/sglang/0.5.10 | tar -x -C DIR`, then --dated-root
DIR/aic-core/src/aiconfigurator_core/systems/data. A dated build label resolves to it (`profile.dated_tables`).

With `--root` (e.g. the collector's output) every engine folder found is built; the output folder's index keeps
the profiles it already lists (the shipped H200 `torch` profile was built from
objectives/data/profiles/collected/ this way). A `--root` build refuses to replace a profile of the output folder
that its index records with another source text (`replaced`; a user's own H200 torch collection would otherwise
overwrite the shipped one) unless `--force`; the same --source (or, without one, the same --root) is a rebuild.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from objectives import catalog

from .grid import Table, covered_cells, extend_proportional, extend_trend, fill_gaps, monotone, pivot
from .profile import DATA_DIR, GPU_OF_SYSTEM, KernelProfile, LazyTables, TableGroups, build_order, release_key, save

log = logging.getLogger(__name__)

#: raw gemm_dtype -> table name (`gemm.<name>`); "sq": TensorRT-LLM's SmoothQuant W8A8 int8 GEMM (per-token
#: activation and per-channel weight scales; aiconfigurator-core's A100 TensorRT-LLM 1.0.0 table), the table int8
#: compute reads (`inference.measured.INT8_GEMM_LANE` where a profile lacks it)
GEMM_DTYPES = {"bfloat16": "bf16", "float16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "fp4",
               "int4_wo": "int4_wo", "int8_wo": "int8_wo", "sq": "int8", "float32": "fp32"}
#: systems without FP8 matrix engines, whose `fp8` GEMM rows time FP8 weights dequantized to a 16-bit GEMM: kept as
#: `gemm.fp8_wo` (the weight-only table `inference.measured` reads for FP8 weights computed in 16 bits), not as an
#: FP8 GEMM. Intel's Arc Pro B60: aiconfigurator-core's b60.yaml ("B60 has no native FP8 matrix-compute support, so
#: this path falls back to BF16"), and its vLLM 0.26.0 table agrees: the fp8 rows take about half the bf16 time at
#: one token (half the weight bytes) and the bf16 time at 4,096 (94 TFLOPS either way, the 98.3 TFLOPS BF16 peak)
WEIGHT_ONLY_FP8_SYSTEMS = ("b60",)
#: MoE weight formats kept (the table's moe_dtype names)
MOE_DTYPES = ("bfloat16", "fp8", "fp8_block", "nvfp4", "w4a16_mxfp4", "w4a8_mxfp4_mxfp8", "int4_wo", "int8_wo")
MOE_SHAPE = ("hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size", "moe_ep_size")
KV_DTYPES = {"bfloat16": "bf16", "float16": "bf16", "fp8": "fp8", "float32": "fp32"}
ENGINES = ("vllm", "sglang", "trtllm")
#: m values kept from the GEMM tables (the measured grid's powers of two and midpoints)
M_KEEP = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 512, 768, 1024, 1536, 2048, 3072, 4096, 8192, 16384,
          32768, 65536)
MAX_MISSING = 0.35


@functools.lru_cache(maxsize=1)
def aiconfigurator_root() -> Path | None:
    """The kernel-table folder of an installed aiconfigurator-core (None when not installed); looked up once a
    process (`importlib.util.find_spec` walks sys.path, and `profiles.load` asks on every cost-model call)."""
    try:
        import importlib.util
        spec = importlib.util.find_spec("aiconfigurator_core")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / "systems" / "data"
    return root if root.is_dir() else None


#: the kernel tables' versions sort as releases do (`profile.release_key`)
_vkey = release_key


def versions(root: Path, system: str, op: str, engine: str) -> list[str]:
    """Versions with tables for (system, op, engine), oldest first."""
    d = root / system / op / engine
    return build_order(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []


def _newest_table(root: Path, system: str, op: str, engine: str, fname: str) -> Path | None:
    """`<root>/<system>/<op>/<engine>/<version>/<fname>` of the newest version that has that table, else None."""
    vs = [v for v in versions(root, system, op, engine) if (root / system / op / engine / v / fname).exists()]
    return root / system / op / engine / vs[-1] / fname if vs else None


def _table_upto(root: Path, system: str, op: str, engine: str, version: str, fname: str) -> Path | None:
    """`<root>/<system>/<op>/<engine>/<v>/<fname>` of the newest version v up to the profile's `version` (else the
    newest of all), where that table exists, else None."""
    vs = versions(root, system, op, engine)
    v = [x for x in vs if _vkey(x) <= _vkey(version)] or vs
    path = root / system / op / engine / v[-1] / fname if v else None
    return path if path is not None and path.exists() else None


def _read(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    df = pd.read_parquet(path)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; a kernel table needs {list(required)}")
    lat = pd.to_numeric(df["latency"], errors="coerce")
    bad = ~np.isfinite(lat.to_numpy(float)) | (lat.to_numpy(float) <= 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: row {row + 1} column 'latency' = {df['latency'].iloc[row]!r} is not a positive "
                         f"number (ms)")
    return df


#: kernel-table systems whose GPUs are the same silicon (GB200's Blackwell GPU is B200's, GB300's is B300's): one
#: engine version's tables on the two time the same kernels
TWIN_SYSTEMS = {"b200_sxm": "gb200", "gb200": "b200_sxm", "b300_sxm": "gb300", "gb300": "b300_sxm"}
#: how far beyond the twin tables' median ratio a fused-MoE cell may lie above its twin's before the twin bounds it
TWIN_SLACK = 1.1
#: the cells of a GEMM and of a fused-MoE table
GEMM_CELL = ("gemm_dtype", "kernel_source", "m", "n", "k")
MOE_CELL = ("moe_dtype", "kernel_source", "distribution", "num_tokens", *MOE_SHAPE)


def _twin_of(root: Path, system: str, path: Path) -> Path | None:
    """`path` (a table under `root / system`) on the `TWIN_SYSTEMS` twin of `system`, where that table exists."""
    twin = TWIN_SYSTEMS.get(system)
    other = root / twin / path.relative_to(root / system) if twin else None
    return other if other is not None and other.exists() else None


def _twin_bounded(df: pd.DataFrame, twin: pd.DataFrame, cells: tuple[str, ...]) -> pd.DataFrame:
    """`df`'s cells (`cells`, those both tables have) at most TWIN_SLACK x the twin system's cell x the median ratio
    of the two tables over their common cells. A collection's outliers are slow cells (a busy or throttled GPU while
    it timed them), not fast ones:
    - fused MoE, TensorRT-LLM 1.3.0rc20, B200 over GB200: median 1.04-1.05 and 90th percentile 1.10-1.15 for every
      format and kernel but NVFP4's CUTLASS rows (1.31-1.40), where DeepSeek-V3's shape at expert TP 4, 32-256
      tokens, runs at 0.58-0.6 of GB200's time and of GLM-5's in the same table (30 % of HBM bandwidth where those
      reach about half);
    - GEMM, SGLang 0.5.14, B200 over GB200: a fifth of the bf16 / fp8 / NVFP4 cells lie more than 10 % above the
      median ratio, and in those cells B200's SGLang bf16 GEMM (torch's linear) is 1.22x B200's TensorRT-LLM one
      where elsewhere 1.01x, and GB200's SGLang 1.0x GB200's TensorRT-LLM; vLLM 0.24.0's GB200 table has a tenth of
      its cells so (GB200 vLLM over GB200 TensorRT-LLM 1.08-1.16 there, B200's 0.74-0.97)."""
    cell = [c for c in cells if c in df.columns and c in twin.columns]
    mine = df.groupby(cell)["latency"].transform("min")
    theirs = twin.groupby(cell)["latency"].min().rename("_twin")
    j = df[cell].join(theirs, on=cell)["_twin"]
    both = j.notna().to_numpy()
    if not both.any():
        return df
    ratio = float(np.median(mine.to_numpy()[both] / j.to_numpy()[both]))
    cap = (j * ratio * TWIN_SLACK).to_numpy()
    lat = df["latency"].to_numpy(float)
    return df.assign(latency=np.where(both & (lat > cap), cap, lat))


def _table(df: pd.DataFrame, axes: list[str], fill_order: list[int], per_prompt: bool = False,
           size_axis: int | None = None, trend_axis: int | None = None) -> Table | None:
    """`per_prompt`: the first axis counts prompts whose work adds up (`extend_proportional` along it first);
    `size_axis`: an axis along which the latency cannot fall (`grid.monotone`, after the gaps are filled);
    `trend_axis`: an axis beyond whose last measured cell each line goes on as its last cells trend
    (`grid.extend_trend`, before the gaps are filled). None (with a warning) where an axis holds fewer than two
    values, and where the cells are too sparse to fill."""
    ax, v = pivot(df, axes)
    if single := [f"{n} = {', '.join(f'{x:g}' for x in a) or 'none'}" for n, a in zip(axes, ax) if len(a) < 2]:
        # one value along an axis (a collection at one rank count: `collect --ranks 2`) makes no curve over it
        log.warning("table over %s measured at one value only (%s): not built (the model prices it on the roofline); "
                    "measure two or more", tuple(axes), ", ".join(single))
        return None
    covered = covered_cells(np.isfinite(v))  # what the fills below add is beyond the measured cells
    if per_prompt:
        v = extend_proportional(v, 0, ax[0])
    if trend_axis is not None:
        v = extend_trend(v, trend_axis, ax[trend_axis])
    frac = float(np.isnan(v).mean())
    if frac > MAX_MISSING:
        return None
    for a in fill_order:
        v = fill_gaps(v, a)
    if not np.isfinite(v).all():
        return None
    if size_axis is not None:
        v = monotone(v, size_axis)
    return Table(tuple(axes), ax, v, covered)


#: GEMM formats every engine runs with the same kernel (torch's linear, cuBLAS): vLLM's
#: `torch.nn.functional.linear`, SGLang's `sglang_torch_linear`, TensorRT-LLM's `torch_flow` bf16 rows
SHARED_GEMM_DTYPES = ("bfloat16",)


def gemm_tables(path: Path, twin: Path | None = None, peers: list[Path] | None = None) -> dict[str, Table]:
    """GEMM latency per format by (m, n, k); `twin`: the same engine version's table on a `TWIN_SYSTEMS` system,
    `peers`: the other engines' tables on the same system, whose `SHARED_GEMM_DTYPES` cells time the same kernel
    (each bounds the table's cells: `_twin_bounded`). SGLang 0.5.14's bf16 GEMM on H200 / B200: a ninth of its cells
    above 1.2x the three engines' median (vLLM's and TensorRT-LLM's 0.0-0.5 %)."""
    cols = ("gemm_dtype", "m", "n", "k", "latency")
    df = _read(path, cols)
    df = df[df["m"].isin(M_KEEP)]
    if twin is not None:
        df = _twin_bounded(df, _read(twin, cols), GEMM_CELL)
    if peers:
        shared = df["gemm_dtype"].isin(SHARED_GEMM_DTYPES).to_numpy()
        others = pd.concat([_read(q, cols) for q in peers])
        others = others[others["gemm_dtype"].isin(SHARED_GEMM_DTYPES)]
        if shared.any() and len(others):
            df = pd.concat([df[~shared], _twin_bounded(df[shared], others, ("gemm_dtype", "m", "n", "k"))])
    out = {}
    for raw, d in df.groupby("gemm_dtype"):
        name = GEMM_DTYPES.get(str(raw))
        if name is None or name in out:
            continue
        # a line the collector stopped one m short of the others (the largest n x k) goes on along its trend in m:
        # an edge fill at its last time would make it fall along n and hold every lookup beyond the grid flat
        t = _table(d, ["m", "n", "k"], [0, 1, 2], size_axis=0, trend_axis=0)
        if t is None:
            log.info("%s: gemm dtype %s too sparse, dropped", path, raw)
        else:
            out[name] = t
    return out


def _length_axes(df: pd.DataFrame, kind: str, gen_heads: str = "num_heads") -> tuple[pd.DataFrame, list[str]]:
    """The table axes of an attention-like kernel: context by (batch, input length, num_heads), generation by
    (batch, KV length = step + isl, `gen_heads`)."""
    if kind == "context":
        return df, ["batch_size", "isl", "num_heads"]
    return df.assign(kv_len=df["step"] + df["isl"]), ["batch_size", "kv_len", gen_heads]


def _kv_tables(df: pd.DataFrame, axes: list[str], min_line_share: float = 0.0,
               per_prompt: bool = False) -> dict[str, Table]:
    """One Table per KV-cache dtype over `axes` (the median of the measurements in a cell; gaps filled along the
    length, then the batch, then the heads; `per_prompt` (context tables): first beyond each length's largest
    measured batch in proportion to the batch, see `_table`; otherwise (generation tables: the collectors stop at
    a total of batch x length, so a large batch's longest contexts are not measured) beyond each batch's longest
    measured context on its trend, `grid.extend_trend`); lengths measured on fewer than `min_line_share` of the
    most measured length's lines are dropped first."""
    out = {}
    for raw, d in df.groupby("kv_cache_dtype"):
        name = KV_DTYPES.get(str(raw))
        if name is None or d.empty:
            continue
        med = d.groupby(axes, as_index=False)["latency"].median()
        if min_line_share > 0:
            lines = med.groupby(axes[1]).size()
            med = med[med[axes[1]].isin(lines[lines >= min_line_share * lines.max()].index)]
        t = _table(med, axes, [1, 0, 2], per_prompt=per_prompt, trend_axis=None if per_prompt else 1)
        if t is not None:
            out[name] = t
    return out


#: attention kernels an engine selects by default, most preferred first, where its table timed a cell with several:
#: SGLang's `_get_default_attn_backend` (sglang/srt/server_args.py) picks trtllm_mha on SM100 and fa3 on Hopper for
#: standard (non-MLA) attention; its Blackwell tables also time flashinfer on a quarter of trtllm_mha's cells
#: (median 6 % slower at decode, 11 % at prefill), which the cell median blended in
ATTN_LANES = {"sglang": ("trtllm_mha", "fa3")}


def _default_lane(df: pd.DataFrame, engine: str, cell: list[str]) -> pd.DataFrame:
    """The rows of the engine's default kernel (`ATTN_LANES`) in each cell that timed it; other cells as they are."""
    lanes = ATTN_LANES.get(engine)
    if not lanes or "kernel_source" not in df.columns:
        return df
    rank = df["kernel_source"].map({k: i for i, k in enumerate(lanes)}).fillna(len(lanes))
    best = rank.groupby([df[c] for c in cell]).transform("min")
    return df[rank == best]


def attention_tables(path: Path, kind: str) -> dict[str, Table]:
    df = _read(path, ("batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "kv_cache_dtype",
                      "step", "latency"))
    if "window_size" not in df.columns:  # older tables: full attention only
        df = df.assign(window_size=0)
    df = df[(df["head_dim"] == 128) & (df["window_size"] == 0)]
    # <root>/<system>/attention/<engine>/<version>/<table>: the engine's default kernel where a cell has several
    df = _default_lane(df, path.parts[-3], ["batch_size", "isl", "num_heads", "num_key_value_heads",
                                            "kv_cache_dtype", "step"])
    return _kv_tables(*_length_axes(df, kind, gen_heads="num_key_value_heads"), per_prompt=kind == "context")


def mla_tables(path: Path, kind: str) -> dict[str, Table]:
    """MLA attention (no projections): context by (batch, input length, heads per GPU), generation by (batch,
    KV length, heads per GPU), per KV-cache dtype (median over the TP sizes measured at one head count)."""
    df = _read(path, ("batch_size", "isl", "num_heads", "kv_cache_dtype", "step", "latency"))
    return _kv_tables(*_length_axes(df, kind), per_prompt=kind == "context")


#: DeepSeek-sparse-attention architectures measured as whole attention modules, by the name the model uses
DSA_ARCHS = {"DeepseekV32ForCausalLM": "deepseek_v32", "GlmMoeDsaForCausalLM": "glm5"}


def dsa_tables(path: Path, kind: str, build: str | None = None) -> dict[str, Table]:
    """DeepSeek sparse attention modules (projections, lightning indexer, top-k, sparse MLA) per architecture and
    KV-cache dtype: context by (batch, input length, heads per GPU) without a cached prefix (step 0), generation
    by (batch, KV length, heads per GPU); FP8 block-scaled projections where measured (`_module_tables`).

    The context tables time each (batch, length) after cached prefixes too; a prefix changes the path (SGLang runs
    a prompt whose keys, prefix + prompt, fit the indexer's top-k as dense MHA and a longer one through the
    indexer and sparse MLA), so the rows kept are those without a cached prefix (step 0), not a median over the
    prefixes (docs/profiles.md, thirty-second round, has the figures). `build`: only the rows whose ``version``
    column names that engine build (a folder that mixes builds: `DATED_TABLES`)."""
    df = _read(path, ("op_name", "architecture", "batch_size", "isl", "num_heads", "kv_cache_dtype", "step",
                      "latency"))
    df = df[df["op_name"] == f"dsa_{kind}_module"]
    if build is not None:
        df = df[df["version"].astype(str) == build]
    if "gemm_type" in df.columns and (df["gemm_type"] == "fp8_block").any():
        df = df[df["gemm_type"] == "fp8_block"]
    if kind == "context":
        df = df[df["step"] == 0]
    return _module_tables(df, kind, DSA_ARCHS)


#: kernel tables of an engine build between releases that timed some modules only, each shipped as a profile of its
#: own version (`profile.TABLE_BUILDS` dates it; `profile.dated_tables` picks it for a dated build label): its file
#: holds those modules' tables (`DATED_FAMILIES`), `profile.load` reads the rest from the base release's profile. (engine, version) -> (base release,
#: the tables' folder under a `<system>/sparse_attention/<engine>/` of the source, its systems, the source).
#: SGLang main of 2026-04-16 (0.0.0.dev1+ga4cf2ea12): DeepSeek sparse attention modules (DeepSeek-V3.2 and GLM-5,
#: FP8 / bf16 KV) on B200 and H200, filed under 0.5.10 in ai-dynamo/aiconfigurator (Apache-2.0, NVIDIA) at the
#: commit below; not in the aiconfigurator-core 0.12.0 wheel. B300's 0.5.10 folder holds 64-head bf16 rows of
#: release 0.5.10 only, no 8-head FP8 cell: B300 keeps 0.5.14's. The folder's DeepSeek-V4 tables are not read
DATED_TABLES: Mapping[tuple[str, str], tuple[str, str, tuple[str, ...], str]] = {
    ("sglang", "0.0.0.dev1+ga4cf2ea12"): (
        "0.5.14", "0.5.10", ("b200_sxm", "h200_sxm"),
        "ai-dynamo/aiconfigurator@095f58a51c4ca8e61b66ec108d86f223f8d559ce (Apache-2.0, NVIDIA): "
        "aic-core/src/aiconfigurator_core/systems/data/<system>/sparse_attention/sglang/0.5.10/"
        "dsa_{context,generation}_module_perf.parquet, rows of version 0.0.0.dev1+ga4cf2ea12")}


#: the table families a `DATED_TABLES` build's profile holds of its own (the rest are its base release's)
DATED_FAMILIES = ("dsa_context", "dsa_generation")


def dated_profile(system: str, root: Path, engine: str, version: str) -> KernelProfile | None:
    """The tables of a `DATED_TABLES` build on `system` (its `DATED_FAMILIES` only, from `root`: a
    `<system>/sparse_attention/<engine>/<folder>/` tree of the source named there), the file `profile.load` lays over
    its base release's profile; None where `root` lacks them for that system."""
    _, folder, systems, source = DATED_TABLES[(engine, version)]
    d = root / system / "sparse_attention" / engine / folder
    files = {kind: d / f"dsa_{kind}_module_perf.parquet" for kind in ("context", "generation")}
    if system not in systems or not all(f.exists() for f in files.values()):
        return None
    tables = {f"dsa_{kind}.{k}": t for kind, f in files.items() for k, t in dsa_tables(f, kind, build=version).items()}
    return KernelProfile(system=system, engine=engine, version=version, source=source, tables=tables)


def _module_tables(df: pd.DataFrame, kind: str, archs: Mapping[str, str]) -> dict[str, Table]:
    """Whole attention-module tables `<name>.<kv>` per architecture of `archs` (the table's name -> ours) and
    KV-cache dtype: context by (batch, input length, heads per GPU), every measured length, cells beyond a length's
    largest measured batch extended per prompt; generation by (batch, KV length = step + isl, heads per GPU),
    lengths kept where at least half the (batch, heads) lines were measured, the rest filled along the axes."""
    df, axes = _length_axes(df, kind)
    out = {}
    for arch, d in df.groupby("architecture"):
        name = archs.get(str(arch))
        if name is not None:
            # generation: lengths measured on few (batch, heads) lines are dropped
            tabs = (_kv_tables(d, axes, per_prompt=True) if kind == "context"
                    else _kv_tables(d, axes, min_line_share=0.5))
            out.update({f"{name}.{kv}": t for kv, t in tabs.items()})
    return out


#: MiniMax-sparse-attention architectures measured as whole attention modules, by the name the model uses
MSA_ARCHS = {"MiniMaxM3ForCausalLM": "minimax_m3"}
#: engines whose MSA module tables are read. TensorRT-LLM 1.3.0rc23's are not (its tables' collection_meta.yaml and
#: the tables themselves): on Blackwell (implementation="msa", fmha_sm100; serving defaults to the Triton reference
#: unless the deployment sets it) the context rows are eager, host-bound and timed under CPU contention (B200,
#: 8 heads, bf16: 148 ms at 2 x 2,048 tokens, 4.6 ms at 4 x 2,048; 28-32 % of neighbouring cells fall below 0.8x
#: as the batch or length grows, at most 0.5 % in SGLang's and vLLM's) and the generation rows carry a copy of the
#: whole index-key pool per forward whose size is the collector's allocation (92 % of the b=256, 64k-token point);
#: on Hopper the Triton reference ("default") grows with the square of the prompt (H200, 8 heads, one prompt:
#: 81.6 ms per layer at 8k tokens, 373 ms at 16k; SGLang's Triton path 2.0 / 4.1 ms) and superlinearly with batch
#: x KV at decode (2.2 s per layer at 1,024 x 32k). Its rows keep the GQA tables at the bounded span
MSA_ENGINES = ("sglang", "vllm")


def msa_tables(path: Path, kind: str) -> dict[str, Table]:
    """MiniMax sparse attention modules (fused QKV and indexer projections, QK norms, RoPE, the indexer's block
    scores and top-k, sparse GQA, output projection; ai-dynamo/aiconfigurator collector/<engine>/
    collect_msa_module.py) per architecture and KV-cache dtype: context by (batch, input length, heads per GPU)
    without a cached prefix (step 0), generation by (batch, KV length, heads per GPU); the bf16 projections (the
    one format every engine measured: its GEMM table prices them to take them out again)."""
    df = _read(path, ("op_name", "architecture", "batch_size", "isl", "num_heads", "kv_cache_dtype", "step",
                      "latency"))
    df = df[df["op_name"] == f"msa_{kind}_module"]
    if "gemm_type" in df.columns:
        df = df[df["gemm_type"] == "bfloat16"]
    if kind == "context":
        df = df[df["step"] == 0]
    return _module_tables(df, kind, MSA_ARCHS)


#: DeepSeek-V4 models the module tables were measured on, by the hidden size that keys their tables
DSV4_MODELS = {"DeepSeek-V4-Flash": 4096, "DeepSeek-V4-Pro": 7168}
#: DeepSeek-V4 attention layer kinds measured as whole modules (compress ratio 4 / 128)
DSV4_KINDS = ("csa", "hca")


def dsv4_tables(path: Path, kind: str) -> dict[str, Table]:
    """DeepSeek-V4 attention modules (query and KV projections, compressor, CSA indexer and top-k, sparse attention
    over the window and compressed entries, grouped output projection) per measured model: context by (batch,
    input length, heads per GPU) without a cached prefix, generation by (batch, KV length, heads per GPU); FP8
    block-scaled projections where measured; one FP8 KV cache (the engines' DeepSeek-V4 layout). Keyed
    `<kind>_h<hidden>` by the model's hidden size (`DSV4_MODELS`)."""
    df = _read(path, ("model", "batch_size", "isl", "num_heads", "step", "latency"))
    if "gemm_type" in df.columns and (df["gemm_type"] == "fp8_block").any():
        df = df[df["gemm_type"] == "fp8_block"]
    stage = "context" if "_context_" in path.name else "generation"
    if stage == "context":
        df = df[df["step"] == 0]
    df, axes = _length_axes(df, stage)
    out = {}
    for name, d in df.groupby(df["model"].map(lambda s: str(s).rsplit("/", 1)[-1].removesuffix("-FP8"))):
        hid = DSV4_MODELS.get(str(name))
        if hid is None:
            continue
        med = d.groupby(axes, as_index=False)["latency"].median()
        t = _table(med, axes, [1, 0, 2], per_prompt=stage == "context")
        if t is not None:
            out[f"{kind}_h{hid}"] = t
    return out


def mhc_tables(path: Path) -> dict[str, Table]:
    """DeepSeek-V4 hyper-connection modules (`pre`: mix the streams into the block's input; `post`: expand its
    output back) by (tokens, hidden size); a cell is one layer's two sites (attention and MLP), which the
    collectors time in one call (ai-dynamo/aiconfigurator collector/<engine>/collect_mhc_module.py); fastest
    kernel per cell."""
    df = _read(path, ("op_name", "num_tokens", "hidden_size", "latency"))
    out = {}
    for op, d in df.groupby("op_name"):
        if str(op) in ("pre", "post"):
            t = _table(d, ["num_tokens", "hidden_size"], [0, 1], size_axis=0)
            if t is not None:
                out[str(op)] = t
    return out


def gdn_tables(path: Path) -> dict[str, Table]:
    """Gated DeltaNet (linear attention) layer time (ms, one layer's kernels of a phase summed per measured model
    shape, then the median over the shapes at the same value heads per GPU): `gdn_context` by (batch, prompt length,
    value heads per GPU), cells beyond a (length, heads) line's largest measured batch in proportion to the prompts;
    `gdn_generation` by (decoding sequences, value heads per GPU).

    A prompt batch is not one sequence of its tokens: the chunked delta rule (`chunk_gated_delta_rule`, 64-token
    chunks) carries a state from chunk to chunk within a sequence and runs sequences side by side (its grid is
    value heads x sequences), the conv keeps a state per sequence. aiconfigurator-core's collectors time b prompts
    of s tokens (`num_tokens` = b x s) at b = 1-64 on every system and engine (a collection of one prompt per
    call: `_gdn_one_prompt_table`)."""
    df = _read(path, ("phase", "kernel_source", "batch_size", "num_tokens", "num_v_heads", "latency"))
    if "seq_len" not in df:
        df = df.assign(seq_len=df["num_tokens"] // df["batch_size"].clip(lower=1))
    model = "model_name" if "model_name" in df else "phase"
    out = {}
    for phase, d in df.groupby("phase"):
        cell = ["batch_size", "seq_len", "num_v_heads"] if phase == "context" else ["num_tokens", "num_v_heads"]
        per = d.groupby([*cell, model, "kernel_source"], as_index=False)["latency"].median()
        # one layer = its kernels summed (per model shape), then the median over the measured model shapes
        layer = per.groupby([*cell, model], as_index=False)["latency"].sum()
        tot = layer.groupby(cell, as_index=False)["latency"].median()
        if phase == "context":
            t = _gdn_one_prompt_table(tot) if tot["batch_size"].nunique() == 1 else _table(
                tot, cell, [1, 0, 2], per_prompt=True)
        else:
            t = _table(tot, cell, [0, 1])
        if t is not None:
            out[f"gdn_{phase}"] = t
    return out


#: prompts per call of the batches a one-prompt Gated DeltaNet collection stands in for (aiconfigurator-core's
#: collectors' batch grid, `gdn_tables`)
GDN_BATCHES = (1, 2, 4, 8, 16, 32, 64)


def _gdn_one_prompt_table(tot: pd.DataFrame) -> Table | None:
    """A `gdn_context` table from layer times (`batch_size`, `seq_len`, `num_v_heads`, `latency`) measured at one
    prompt per call only: b prompts of s tokens as one sequence of b x s tokens where that length was measured
    (the chunked kernels' serial case: their chunks in turn, no prompt beside another; `per_prompt` beyond). No
    cell beyond one prompt counts as measured: those lookups say "extrapolated"."""
    one = tot.assign(tokens=tot["batch_size"] * tot["seq_len"])
    lens = set(one["seq_len"])
    parts = [one.assign(batch_size=b, seq_len=one["tokens"] // b) for b in GDN_BATCHES]
    rows = pd.concat([d[(d["tokens"] % d["batch_size"] == 0) & d["seq_len"].isin(lens)] for d in parts])
    t = _table(rows.drop(columns="tokens"), ["batch_size", "seq_len", "num_v_heads"], [1, 0, 2], per_prompt=True)
    if t is None:
        return None
    covered = np.zeros_like(t.log_ms, dtype=bool) if t.covered is None else t.covered.copy()
    covered[1:] = False
    return Table(t.names, t.axes, t.log_ms, covered)


#: Kimi Delta Attention kernels (aiconfigurator-core `kda/<engine>/<version>/kda_perf.parquet`, Kimi-K3's shape:
#: hidden 7168, 96 heads of 128, conv kernel 4, measured per attention-TP shard of 12 / 24 / 48 / 96 heads):
#: - the prompt's short conv (the 3-call Q/K/V `causal_conv1d_fn_qkv3`) and its chunked scan (SGLang `chunk_kda`,
#:   Triton; vLLM `flashkda_fwd`, CUDA, `chunk_kda_with_fused_gate` below SM90);
#: - a decode step's fused kernel where the engine dispatches one (SGLang `kda_fused_decode` on the 12-head shard
#:   only; vLLM's preview build `fused_kda_decode` on every shard: conv update, recurrence and the gated output
#:   norm in one kernel), else the Triton pair (`causal_conv1d_update` + `fused_recurrent_kda_packed_decode`). The
#:   tables hold exactly the dispatched lane per shard (SGLang's collection_meta.yaml: "kda_fused_decode on the
#:   12-head shard, Triton pair on 24/48/96"; vLLM 0.27.0's: no fused rows, its DS conv-state layout runs the pair).
#: The `verify` phase (speculative decoding's target verify over draft tokens) is not read: no cost model here
#: drafts tokens. No projection is among these kernels (those stay on the GEMM tables).
KDA_CONV = "causal_conv1d_fn_qkv3"
KDA_FUSED_DECODE = ("kda_fused_decode", "fused_kda_decode")
KDA_DECODE_PAIR = ("causal_conv1d_update", "fused_recurrent_kda_packed_decode")
#: engines without KDA tables of their own, and the engine whose tables on the same GPU they read: no TensorRT-LLM
#: release serves KDA (aiconfigurator-core prices Kimi-K3 under SGLang and vLLM only); its linear-attention layers
#: run flash-linear-attention's Triton kernels (its Gated DeltaNet table times `chunk_gated_delta_rule`, SGLang's
#: kernel, within 0.75-0.85x of SGLang's on B200, where vLLM's FlashInfer prefill is another lane), so SGLang's
#: Triton KDA lane is the nearest
KDA_LANES = {"trtllm": "sglang"}
#: vLLM KDA tables older than this version time the prompt's conv through the collector's metadata=None branch (a
#: host-side numpy + device-to-host copy): gb300's 0.27.0 collection_meta.yaml, "added a ~0.8ms/iter floor that
#: polluted-shape-flattened the whole 0.1.dev19262 context series; the same floor is present in every other
#: system's 0.1.dev19262 kda context rows" (one token: 0.42 ms on B200, 1.35 ms on GB300, where SGLang's conv takes
#: 7-11 us). Their conv is read from SGLang's table on the same GPU instead, their scan stays their own. Checked on
#: GB300, the one GPU with vLLM 0.27.0's serving-parity rows: SGLang's conv + the preview's flashkda_fwd is 0.89-1.57x
#: (median 1.04, from 4k prompt tokens 0.89-1.29x) 0.27.0's layer over their 368 common cells, the preview's own
#: conv 1.2-64x (median 10x); flashkda_fwd itself agrees between the two versions (median ratio 1.00)
KDA_VLLM_CONV_FIXED = "0.27.0"


def kda_tables(path: Path, conv: Path | None = None) -> dict[str, Table]:
    """Kimi Delta Attention layer time (ms, one layer's kernels summed per phase, no projections; `KDA_CONV`):
    `kda_context` by (batch, prompt length, value heads per GPU): the short conv + the chunked scan, cells beyond a
    (length, heads) line's largest measured batch in proportion to the prompts; `kda_generation` by (decoding
    sequences, value heads per GPU): the fused decode kernel where measured, else the Triton pair.
    `conv`: a table whose context conv rows replace `path`'s (`KDA_VLLM_CONV_FIXED`)."""
    cols = ("phase", "kernel_source", "batch_size", "seq_len", "num_tokens", "num_v_heads", "latency")
    df = _read(path, cols)
    ctx = df[df["phase"] == "context"]
    if conv is not None:
        other = _read(conv, cols)
        ctx = pd.concat([ctx[ctx["kernel_source"] != KDA_CONV],
                         other[(other["phase"] == "context") & (other["kernel_source"] == KDA_CONV)]])
    out = {}
    cell = ["batch_size", "seq_len", "num_v_heads"]
    per = ctx.groupby([*cell, "kernel_source"])["latency"].median().unstack("kernel_source")
    if KDA_CONV in per.columns and len(per.columns) == 2:  # the conv and one scan: both measured in a cell
        layer = per.sum(axis=1, min_count=2).dropna().rename("latency").reset_index()
        t = _table(layer, cell, [1, 0, 2], per_prompt=True)
        if t is not None:
            out["kda_context"] = t
    elif len(per.columns):
        raise ValueError(f"{path}: context kernels {sorted(per.columns)}; a KDA layer's prompt runs {KDA_CONV!r} "
                         "and one chunked scan")
    gen = df[df["phase"] == "generation"]
    per = gen.groupby(["num_tokens", "num_v_heads", "kernel_source"])["latency"].median().unstack("kernel_source")
    fused = per[[k for k in KDA_FUSED_DECODE if k in per.columns]].min(axis=1)
    pair = (per[list(KDA_DECODE_PAIR)].sum(axis=1, min_count=2) if set(KDA_DECODE_PAIR) <= set(per.columns)
            else pd.Series(np.nan, index=per.index))
    layer = fused.fillna(pair).dropna().rename("latency").reset_index()
    if len(layer):
        t = _table(layer, ["num_tokens", "num_v_heads"], [0, 1], size_axis=0)
        if t is not None:
            out["kda_generation"] = t
    return out


def _own_or_lane(root: Path, system: str, op: str, engine: str, version: str, fname: str,
                 lanes: Mapping[str, str]) -> Path | None:
    """The engine's own `fname` up to the profile's `version` (`_table_upto`), else the newest of its `lanes`
    engine on the same system (None: neither)."""
    own = _table_upto(root, system, op, engine, version, fname)
    if own is None and engine in lanes:
        return _newest_table(root, system, op, lanes[engine], fname)
    return own


def kda_paths(root: Path, system: str, engine: str, version: str) -> tuple[Path | None, Path | None]:
    """The KDA table a (system, engine, version) profile reads (its own up to `version`, else its `KDA_LANES`
    engine's newest on the same system, `_own_or_lane`) and the table its context conv comes from instead (SGLang's
    newest for vLLM tables before `KDA_VLLM_CONV_FIXED`; None: its own)."""
    fname = "kda_perf.parquet"
    path = _own_or_lane(root, system, "kda", engine, version, fname, KDA_LANES)
    if path is None or engine != "vllm" or _vkey(path.parent.name) >= _vkey(KDA_VLLM_CONV_FIXED):
        return path, None
    return path, _newest_table(root, system, "kda", "sglang", fname)


#: Mamba-2 kernels (aiconfigurator-core `linear_attention/trtllm/<version>/mamba2_perf.parquet`, TensorRT-LLM
#: 1.3.0rc20 only, on all 8 systems): the collector (`collector/trtllm/collect_mamba2.py`) times each of a layer's
#: four kernels on its own at the whole model's shape (no TP shard): the prompt's short conv `causal_conv1d_fn`
#: ((batch, conv channels, length) input, conv state written) and SSD chunk scan `mamba_chunk_scan_combined`, a
#: decode step's `causal_conv1d_update` and `selective_state_update`. The shipped tables hold the two conv kernels
#: only (no scan or state-update row on any system; aiconfigurator-core prices those two by its speed-of-light
#: model). So these tables price a Mamba-2 layer's conv, by its channels (heads x head dim + 2 x groups x state
#: dim: 1,536 / 6,144 / 10,240 / 18,432 / 20,480 measured; the GENERIC_4K and Nemotron-3 Nano shapes share 6,144
#: and agree within 2%), not its recurrence: `measured` keeps the closed form for the scan and state update
MAMBA2_CONV = {"context": "causal_conv1d_fn", "generation": "causal_conv1d_update"}
#: engines without Mamba-2 tables, and the engine whose tables on the same GPU they read: SGLang's Mamba-2 conv is
#: sgl_kernel's `causal_conv1d_fwd` / `causal_conv1d_update` (the Dao-AILab CUDA kernels TensorRT-LLM's
#: `torch.ops.trtllm.causal_conv1d_*` also port), vLLM's its Triton port; both engines time those same conv kernels
#: in their Gated DeltaNet tables (`gdn_perf` `causal_conv1d_fn` / `causal_conv1d_update`): at 6,144 channels
#: within 0.7-1.25x of this table on B200 and H200 over 1k-32k prompt tokens and 64-1,024 decoding sequences (16k
#: tokens on B200: SGLang 0.142, vLLM 0.150, this table 0.125 ms; 1,024 sequences 0.035 / 0.026 against 0.029 ms)
MAMBA2_LANES = {"vllm": "trtllm", "sglang": "trtllm"}


def mamba2_tables(path: Path) -> dict[str, Table]:
    """Mamba-2 short-conv time (ms, one layer, no projections, no scan; `MAMBA2_CONV`): `mamba2_context` by
    (batch, prompt length, conv channels per GPU), cells beyond a (length, channels) line's largest measured batch
    in proportion to the prompts; `mamba2_generation` by (decoding sequences, conv channels per GPU). The median
    over the model shapes measured at the same channels."""
    cols = ("phase", "kernel_source", "batch_size", "seq_len", "num_tokens", "nheads", "head_dim", "n_groups",
            "d_state", "latency")
    df = _read(path, cols)
    df = df.assign(conv_channels=df["nheads"] * df["head_dim"] + 2 * df["n_groups"] * df["d_state"])
    out = {}
    ctx = df[(df["phase"] == "context") & (df["kernel_source"] == MAMBA2_CONV["context"])]
    cell = ["batch_size", "seq_len", "conv_channels"]
    if len(ctx):
        t = _table(ctx.groupby(cell, as_index=False)["latency"].median(), cell, [1, 0, 2], per_prompt=True)
        if t is not None:
            out["mamba2_context"] = t
    gen = df[(df["phase"] == "generation") & (df["kernel_source"] == MAMBA2_CONV["generation"])]
    cell = ["num_tokens", "conv_channels"]
    if len(gen):
        t = _table(gen.groupby(cell, as_index=False)["latency"].median(), cell, [0, 1], size_axis=0)
        if t is not None:
            out["mamba2_generation"] = t
    return out


def _keyed(d: pd.DataFrame, shape_cols: list[str], tokens: str) -> tuple[tuple[np.ndarray, ...], np.ndarray,
                                                                         np.ndarray, np.ndarray]:
    """A keyed table's grid from rows of several measured shapes: the K distinct shapes (sorted), latency by
    (shape index 1..K, `tokens`) with gaps filled along tokens (duplicates: the fastest), and the cells covered by
    measurements (`grid.covered_cells` along tokens: a shape's cells beyond its largest measured token count are
    its trend). One shape gets a second, duplicate index that no lookup matches (a Table axis needs two points)."""
    shapes = d[shape_cols].drop_duplicates().sort_values(shape_cols).to_numpy(float)
    idx = {tuple(r): i + 1 for i, r in enumerate(shapes)}
    d = d.assign(shape_key=[idx[tuple(r)] for r in d[shape_cols].to_numpy(float)])
    if len(shapes) == 1:
        d = pd.concat([d, d.assign(shape_key=2)])
    ax, v = pivot(d, ["shape_key", tokens])
    # per shape only: another shape's cells say nothing of this one's
    covered = np.stack([covered_cells(row) for row in np.isfinite(v)])
    # a shape measured to fewer tokens than the table's top goes on as its last cells trend (not flat to the top)
    return ax, fill_gaps(extend_trend(v, 1, ax[1]), 1), shapes, covered


#: fused-MoE kernels an engine runs (by default, or where a deployment asks for them) that its own lane did not
#: measure, read from the lane of another engine that measured the same kernel: (engine, moe_dtype, lane engine) ->
#: (system name prefixes, moe_ep_size (None: every EP size), the lane's kernel_source, how the rows join the
#: engine's own (`BORROW_MODES`): "shadow" its rows of the shapes the lane timed, "fill" only the shapes its own
#: tables of that format lack, "pool" with its newest table's rows, each cell the fastest kernel's). Where two
#: lanes lend one format in "shadow" or "fill", the first listed shadows the second's shapes; pooled lanes pool.
#: - SGLang serves MXFP4 MoE checkpoints (gpt-oss) on SM90 at EP 1 with OpenAI's triton_kernels
#:   (sglang/srt/server_args.py, _handle_gpt_oss_family: moe_runner_backend "triton_kernel" when ep_size == 1, not
#:   SM100/SM120/ROCm and triton_kernels is available); its own Hopper lane timed the generic fused_moe_triton
#:   kernel instead (~3x slower at decode sizes), vLLM's lane timed triton_kernels.
#: - vLLM's MXFP4 x MXFP8 experts on Blackwell (`VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1`, the `moe_act_dtype`
#:   "mxfp8" knob) run FlashInfer's TRTLLM-gen MXFP4 MoE with MXFP8 activations
#:   (vllm/model_executor/layers/fused_moe/oracle/mxfp4.py: FLASHINFER_TRTLLM_MXFP4_MXFP8); vLLM 0.24's lane timed
#:   it at DeepSeek-V4's shapes only, SGLang 0.5.14's lane (`sglang_flashinfer_trtllm_moe`, the same FlashInfer
#:   kernel) at gpt-oss's too. Where both lanes timed one FlashInfer TRTLLM-gen kernel they agree: B200 MXFP4 x BF16
#:   at gpt-oss-120b's shape, vLLM / SGLang median 0.99-1.02 per EP / TP layout; MXFP4 x MXFP8 at DeepSeek-V4's
#:   shapes 1.01-1.16 (vLLM's modular kernel the slower), 1.29 at TP 16
#: - TensorRT-LLM serves block-FP8 MoE checkpoints (DeepSeek-V3 / R1, Qwen3-FP8, GLM, MiniMax) on SM100 / SM103
#:   with TRTLLMGenFusedMoE: `ModelConfig.resolve_moe_backend` (tensorrt_llm/_torch/model_config.py, 1.3.0rc20)
#:   returns "TRTLLM" for FP8_BLOCK_SCALES when `is_sm_100f()` under the default moe_config.backend "AUTO". Its
#:   Blackwell lane timed DeepGEMM's grouped GEMMs instead (collector/trtllm/collect_moe.py pins
#:   `moe_backend = "deepgemm"` for fp8_block on SM100f, kernel_source "deepgemm", while its own comment states the
#:   AUTO resolution). SGLang's (`sglang_flashinfer_trtllm_moe`) and vLLM's
#:   (`..._flashinfer_trtllm_trtllmfp8expertsmonolithic`) lanes timed the TRTLLM-gen FP8 block-scale MoE (FlashInfer's
#:   `trtllm_fp8_block_scale_moe`, routing fused, the 1 x 128 activation quantize run before it as TensorRT-LLM's
#:   `fp8_quantize_1x128` is), agreeing within 1-3 % (median per cell, B200 / B300 / GB200 / GB300); SGLang's holds
#:   more shapes. DeepGEMM over that kernel at the shapes both timed (B200, power law and balanced): median 1.41 at
#:   one token, 1.32 at 2-8, 1.18 at 16-64, 0.98 at 128-1,024, 0.68 from 2,048 (docs/profiles.md, twenty-eighth
#:   round). Those lanes ran FlashInfer's kernel without its autotuner (collector/{sglang,vllm}/collect_moe.py call
#:   none; the engines tune it at warm-up, TensorRT-LLM's `fp8_block_scale_moe_runner` through its AutoTuner, as
#:   TensorRT-LLM's collector tuned DeepGEMM), and at 8k tokens it reads
#:   1.3-1.7x the same lanes' bf16 TRTLLM-gen layer (Qwen3-30B-A3B / 235B-A22B shapes), which a tuned FP8 kernel on
#:   twice the tensor throughput is not: the rows are pooled, each cell the faster of DeepGEMM's and TRTLLM-gen's (the
#:   block-FP8 grouped GEMM on the same FP8 MMA), so decode reads TRTLLM-gen and large prefills DeepGEMM
_BLACKWELL = ("b200", "b300", "gb200", "gb300")
#: how `BORROWED_MOE` rows join the engine's own
BORROW_MODES = ("shadow", "fill", "pool")
BORROWED_MOE: dict[tuple[str, str, str], tuple[tuple[str, ...], int | None, str, str]] = {
    ("sglang", "w4a16_mxfp4", "vllm"): (("h100", "h200", "gh200"), 1,
                                        "vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic", "shadow"),
    ("vllm", "w4a8_mxfp4_mxfp8", "sglang"): (_BLACKWELL, None, "sglang_flashinfer_trtllm_moe", "fill"),
    ("trtllm", "fp8_block", "sglang"): (_BLACKWELL, None, "sglang_flashinfer_trtllm_moe", "pool"),
    ("trtllm", "fp8_block", "vllm"): (_BLACKWELL, None,
                                      "vllm_fp8moe_flashinfer_trtllm_trtllmfp8expertsmonolithic", "pool"),
}


def borrowed_moe_rows(root: Path, system: str, engine: str, mode: str = "shadow") -> list[pd.DataFrame]:
    """The `BORROWED_MOE` rows that apply to (system, engine) in that `mode` (`BORROW_MODES`), from the lane
    engine's newest moe_perf table on the same system (empty where that table or kernel is absent), each with the
    corrections the lane's own profile makes (`lane_rows`). `build_one` puts the "fill" ones after the engine's own
    tables, whose shapes then shadow them (`moe_tables_of`), the "shadow" ones before, and hands the "pool" ones to
    `moe_rows`."""
    if mode not in BORROW_MODES:
        raise ValueError(f"mode={mode!r}: valid {', '.join(BORROW_MODES)}")
    out = []
    for (eng, dtype, lane), (prefixes, ep, kernel, how) in BORROWED_MOE.items():
        if eng != engine or how != mode or not system.startswith(prefixes):
            continue
        path = _newest_table(root, system, "moe", lane, "moe_perf.parquet")
        if path is None:
            continue
        df = _read(path, ("moe_dtype", "kernel_source", "num_tokens", "distribution", "latency") + MOE_SHAPE)
        rows = df[(df["moe_dtype"] == dtype) & (df["kernel_source"] == kernel)]
        if ep is not None:
            rows = rows[rows["moe_ep_size"] == ep]
        if len(rows := lane_rows(rows, lane)):
            out.append(rows)
    return out


#: token counts from which a balanced layer must not be slower than the power-law one (the measured rank then holds
#: several times its fair share of the pairs, whatever the skew draw; below it, the experts' weight reads dominate)
BALANCED_CHECK_TOKENS = 1024


def _balance_ratio(bal: pd.DataFrame, skewed: pd.DataFrame, key_cols: list[str]) -> pd.Series:
    """Per shape key: the median over BALANCED_CHECK_TOKENS tokens and beyond of the balanced-routing layer over the
    power-law one (fastest kernel per cell of each), where both were measured. Above 1 the balanced rows were not
    balanced: the power-law row's measured rank is the draw's busiest (aiconfigurator's collectors swap the busiest
    EP rank into rank 0 and time rank 0), and vLLM's and SGLang's collectors pass the synthetic routing through the
    engine's grouped top-k router for DeepSeek-V3's gate (8 groups, top 4): the "balanced" logits tie every group,
    the ties go to the lowest experts, and rank 0 gets several times its share (docs/profiles.md, nineteenth
    round)."""
    def at(d: pd.DataFrame) -> pd.Series:
        d = d[d["num_tokens"] >= BALANCED_CHECK_TOKENS]
        return d.groupby([*key_cols, "num_tokens"])["latency"].min()
    r = (at(bal) / at(skewed)).dropna()
    return r.groupby(level=list(range(len(key_cols)))).median() if len(r) else r


def _sane_balanced(bal: pd.DataFrame, skewed: pd.DataFrame, key_cols: list[str]) -> pd.DataFrame:
    """The shape keys whose balanced-routing rows are balanced (`_balance_ratio` at most 1); another shape has no
    balanced curve."""
    ok = _balance_ratio(bal, skewed, key_cols) <= 1.0
    if not len(ok):
        return bal[key_cols].iloc[:0]
    return ok[ok].index.to_frame(index=False)


#: a family of fused-MoE shapes (one format, hidden, expert FFN, top-k and expert count) is routed through a grouped
#: gate in its table when its balanced layer is slower than the skewed one (`_sane_balanced`) at this share of its
#: EP sizes >= 2 (a kernel mix or one odd EP size does not make a family grouped)
GROUPED_SHARE = 0.75
MOE_FAMILY = ("moe_dtype", "hidden_size", "inter_size", "topk", "num_experts")
#: engines whose MoE collectors pass the synthetic routing through the engine's own (grouped) gate (vLLM's
#: use_grouped_topk, SGLang's TopK for DeepSeek-V3's 8 groups / top 4); TensorRT-LLM's routes with a plain top-k
GROUPED_GATE_ENGINES = ("vllm", "sglang")


def _nearest_family(fam: tuple, pool: Iterable[tuple]) -> tuple | None:
    """The family of `pool` (MOE_FAMILY tuples) of `fam`'s format, top-k and expert count whose hidden x expert FFN
    is nearest in ratio, or None."""
    dt, h, f, k, e_count = fam
    cands = [u for u in pool if u[0] == dt and u[3] == k and u[4] == e_count]
    return min(cands, key=lambda c: abs(np.log(c[1] * c[2] / (h * f)))) if cands else None


def _family_rows(fam: tuple, ep: int, t: pd.Series, rank: int) -> pd.DataFrame:
    """Rows of family `fam` at EP `ep` without expert TP: latency `t` (ms) by tokens, routing `rank` (0 skewed)."""
    dt, h, f, k, e_count = fam
    return pd.DataFrame({"moe_dtype": dt, "hidden_size": h, "inter_size": f, "topk": k, "num_experts": e_count,
                         "moe_tp_size": 1, "moe_ep_size": ep, "num_tokens": t.index.to_numpy(),
                         "latency": t.to_numpy(), "distribution": "power_law_1.01" if rank == 0 else "balanced",
                         "_rank": rank})


def _ungrouped(df: pd.DataFrame) -> pd.DataFrame:
    """One table's rows (both routings, `_rank` 0 skewed / 1 balanced) with the EP >= 2 rows of grouped-gate
    families (`GROUPED_SHARE`) replaced: vLLM's and SGLang's collectors route DeepSeek-V3's layer through its
    grouped top-k gate, which piles the timed rank with more pairs than an ungrouped draw's busiest rank gets under
    the power law, and several times its fair share under "balanced" (docs/profiles.md, nineteenth round, with
    the check of this carry on TensorRT-LLM's plain-routed tables). The family's EP 1 curve does not depend on
    which rank is timed; it is carried to EP e by the measured EP scaling of the nearest plain-routed family of the
    same table, format, top-k and expert count (U): t(e, T) = t(1, T) x t_U(e, T) / t_U(1, T), each routing from
    U's own, never above the measured cell."""
    keys = ["moe_dtype", *MOE_SHAPE]          # the family, then moe_tp_size and moe_ep_size
    d = df[(df["moe_tp_size"] == 1)]
    wide = d[d["moe_ep_size"] >= 2]
    ratio = _balance_ratio(wide[wide["_rank"] == 1], wide[wide["_rank"] == 0], keys)
    if ratio.empty:
        return df
    per_ep = ratio > 1.0
    share = per_ep.groupby(level=list(MOE_FAMILY)).agg(["mean", "size"])
    flag = (share["mean"] >= GROUPED_SHARE) & (share["size"] >= 2)
    # the gate is one model's: where most families of a format, top-k and expert count look grouped (L40S under
    # vLLM), it is the table, not a gate
    peers = [lv for lv in MOE_FAMILY if lv not in ("hidden_size", "inter_size")]
    flag &= flag.groupby(level=peers).transform("mean") <= 0.5
    grouped = share[flag].index
    if not len(grouped):
        return df
    plain = share.index.difference(grouped)
    # rows: (*keys, _rank), columns: tokens (fastest kernel per cell)
    curves = d.groupby([*keys, "num_tokens", "_rank"])["latency"].min().unstack("num_tokens")
    new_rows, drop = [], []
    for fam in grouped:
        if (u := _nearest_family(fam, plain)) is None:
            continue
        try:
            g1, u1 = curves.loc[(*fam, 1, 1, 0)], curves.loc[(*u, 1, 1, 0)]
        except KeyError:
            continue
        for ep in sorted({int(x) for x in per_ep.loc[fam].index.get_level_values("moe_ep_size")}):
            for rk in (0, 1):
                if (*fam, 1, ep, rk) not in curves.index or (*u, 1, ep, rk) not in curves.index:
                    continue
                meas, ue = curves.loc[(*fam, 1, ep, rk)], curves.loc[(*u, 1, ep, rk)]
                t = np.fmin(meas, g1 * ue / u1).dropna()
                drop.append((*fam, 1, ep, rk))
                new_rows.append(_family_rows(fam, ep, t, rk))
    if not new_rows:
        return df
    idx = pd.MultiIndex.from_frame(df[[*keys, "_rank"]])
    keep = ~idx.isin(pd.MultiIndex.from_tuples(drop, names=[*keys, "_rank"]))
    return pd.concat([df[keep], *new_rows], ignore_index=True)


#: a family's power-law (skewed) layer at EP 1 does the balanced layer's work (every pair on the timed rank, at most as
#: many distinct experts): where it takes more than SKEW_EP1_LIMIT times the balanced one at SKEW_CHECK_TOKENS tokens
#: or fewer (median), its skewed rows time something else: TensorRT-LLM 1.3.0rc20's H100 / H200 bf16 tables time
#: Llama-4-Scout's 16 experts (top-1) 5-7x slower skewed than balanced at 1-4 tokens (its B200 NVFP4 table DeepSeek-V3's
#: shape 1.75x, which `_twin_bounded` settles first)
SKEW_EP1_LIMIT = 1.5
SKEW_CHECK_TOKENS = 4


def _skew_carried(df: pd.DataFrame) -> pd.DataFrame:
    """One table's rows (`_rank` 0 skewed / 1 balanced) with the skewed rows of families that fail `SKEW_EP1_LIMIT`
    replaced: at each EP size without expert TP, the family's balanced curve times the skewed-over-balanced ratio of
    the nearest sane family of the same format, top-k and expert count (t_s(e, T) = t_b(e, T) x u_s(e, T) / u_b(e, T));
    without such a family, or with expert TP, the balanced rows stand alone."""
    keys = ["moe_dtype", *MOE_SHAPE]
    d = df[df["moe_tp_size"] == 1]
    small = d[(d["moe_ep_size"] == 1) & (d["num_tokens"] <= SKEW_CHECK_TOKENS)]
    cell = small.groupby([*MOE_FAMILY, "num_tokens", "_rank"])["latency"].min().unstack("_rank")
    if 0 not in cell.columns or 1 not in cell.columns:
        return df
    ratio = (cell[0] / cell[1]).dropna().groupby(level=list(MOE_FAMILY)).median()
    bad = ratio[ratio > SKEW_EP1_LIMIT].index
    if not len(bad):
        return df
    sane = ratio[ratio <= SKEW_EP1_LIMIT].index
    curves = d.groupby([*keys, "num_tokens", "_rank"])["latency"].min().unstack("num_tokens")
    fam_of = pd.MultiIndex.from_frame(df[list(MOE_FAMILY)])
    drop = fam_of.isin(bad) & (df["_rank"] == 0).to_numpy()
    new_rows = []
    for fam in bad:
        if (u := _nearest_family(fam, sane)) is None:
            continue
        eps = sorted({int(x[-1]) for x in curves.index.droplevel("_rank") if tuple(x[:5]) == fam and x[5] == 1})
        for ep in eps:
            try:
                fb, us, ub = (curves.loc[(*fam, 1, ep, 1)], curves.loc[(*u, 1, ep, 0)], curves.loc[(*u, 1, ep, 1)])
            except KeyError:
                continue
            t = (fb * us / ub).dropna()
            new_rows.append(_family_rows(fam, ep, t, 0))
    return pd.concat([df[~drop], *new_rows], ignore_index=True)


#: fused-MoE kernels an engine's table timed beside its default one that the engine runs only when asked:
#: TensorRT-LLM's `moe_torch_flow_min_latency` rows (B200 / GB200, NVFP4, <= 256 experts) are TRTLLMGenFusedMoE
#: (collector/trtllm/collect_moe.py: `moe_backend = "trtllm"` in min-latency mode, routed through DeepSeek-V3's
#: grouped gate for every shape), while serving's `moe_config.backend` "AUTO" resolves NVFP4 checkpoints to CUTLASS
#: (tensorrt_llm/_torch/model_config.py `resolve_moe_backend`: TRTLLM only for gpt-oss and DeepSeek-V4 on SM100 and
#: for block-FP8 on SM100f), the lane the same tables time as `moe_torch_flow_cutlass`
MOE_OPT_IN = {"trtllm": ("moe_torch_flow_min_latency",)}
#: the systems whose TensorRT-LLM fused-MoE tables time both NVFP4 lanes (`MOE_OPT_IN`), which
#: `efficiency.MOE_SCALE_PRIOR` is read from (`opt_in_moe_ratio`)
MOE_SCALE_PRIOR_SYSTEMS = ("gb200", "b200_sxm")


def opt_in_moe_ratio(paths: list[Path | pd.DataFrame], engine: str = "trtllm", dtype: str = "nvfp4",
                     routing: str = "power_law_1.01") -> float:
    """Median over the cells (shape, parallelism, tokens) that both lanes time of the `engine`'s opt-in fused-MoE
    kernel (`MOE_OPT_IN`: TensorRT-LLM's TRTLLM-gen, its min-latency lane) over its default one (CUTLASS), in the
    `dtype` tables of `paths` (moe_perf files or rows already read; cells pooled over them) under `routing` (the
    skew the profile reads). The unitless ratio `efficiency.MOE_SCALE_PRIOR` holds for the engine's
    `profile_moe_scale` where no row fits it."""
    if engine not in MOE_OPT_IN:
        raise ValueError(f"engine={engine!r}: no opt-in fused-MoE lane (valid: {', '.join(MOE_OPT_IN)})")
    key = ["kernel_source", "num_tokens", *MOE_SHAPE]
    ratios = []
    for path in paths:
        df = path if isinstance(path, pd.DataFrame) else _read(path, (*key, "moe_dtype", "distribution", "latency"))
        df = df[(df["moe_dtype"] == dtype) & (df["distribution"] == routing)]
        opt = df["kernel_source"].isin(MOE_OPT_IN[engine])
        cells = key[1:]
        own = df[opt].groupby(cells)["latency"].median()
        default = df[~opt].groupby(cells)["latency"].median()
        r = (own / default).dropna()
        ratios.append(r.to_numpy(float))
    pooled = np.concatenate(ratios) if ratios else np.zeros(0)
    if not len(pooled):
        raise ValueError(f"no cell of {dtype!r} under routing {routing!r} is timed by both {engine}'s lanes "
                         f"({', '.join(MOE_OPT_IN[engine])} and its default) in the tables given")
    return float(np.median(pooled))


def moe_rows(paths: list[Path | pd.DataFrame], engine: str = "",
             twins: Mapping[Path, Path] | None = None, pooled: list[pd.DataFrame] | None = None) -> list[pd.DataFrame]:
    """The rows `moe_tables` keys, one frame per table of `paths` (moe_perf tables newest first: files, or rows
    already read), each read once: the formats of MOE_DTYPES; a file's cells bounded by its `twins` entry (the same
    version's table on a `TWIN_SYSTEMS` system: `_twin_bounded`); kernels `engine` runs only when asked left out
    (`MOE_OPT_IN`); routing ranked (`_rank` 0 power law, 1 balanced; other routings dropped); a file's family whose
    skewed rows fail `SKEW_EP1_LIMIT` carried from its balanced ones (`_skew_carried`) and, for
    GROUPED_GATE_ENGINES, its grouped-gate shapes carried from plain-routed ones (`_ungrouped`): `lane_rows`. Rows
    already read are borrowed from another lane as they are (`borrowed_moe_rows` corrects them as their lane's
    profile does); `pooled` rows join the first file's (routing ranked), so that each cell is the fastest kernel's
    of both, or stand alone without a file. Tables left empty are dropped."""
    cols = ("moe_dtype", "num_tokens", "distribution", "latency") + MOE_SHAPE
    out = []
    for path in paths:
        borrowed = isinstance(path, pd.DataFrame)
        df = path if isinstance(path, pd.DataFrame) else _read(path, cols)
        df = df[df["moe_dtype"].isin(MOE_DTYPES)]
        if twins and not borrowed and path in twins:
            df = _twin_bounded(df, _read(twins[path], cols), MOE_CELL)
        if "kernel_source" in df.columns:   # `MOE_OPT_IN`
            df = df[~df["kernel_source"].isin(MOE_OPT_IN.get(engine, ()))]
        df = _ranked(df) if borrowed else lane_rows(df, engine)
        if pooled and not borrowed:
            df, pooled = pd.concat([df, *(_ranked(p) for p in pooled)], ignore_index=True), None
        if not df.empty:
            out.append(df)
    if pooled:
        out += [d for p in pooled if not (d := _ranked(p)).empty]
    return out


def _ranked(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with the routing ranked: `_rank` 0 power law (alpha 1.01, the skew engines see), 1 balanced (read where
    a shape has no power-law rows); rows of other routings dropped."""
    rank = df["distribution"].map({"power_law_1.01": 0, "balanced": 1}).fillna(9)
    return df.assign(_rank=rank)[rank < 9]


def lane_rows(df: pd.DataFrame, engine: str) -> pd.DataFrame:
    """One moe_perf table's rows as `engine`'s profile keeps them (`moe_rows`): routing ranked (`_ranked`), the
    skewed rows of a family that fail `SKEW_EP1_LIMIT` carried from its balanced ones (`_skew_carried`) and, where
    `engine`'s collector routes through the model's grouped gate (GROUPED_GATE_ENGINES), its grouped-gate shapes
    carried from plain-routed ones (`_ungrouped`)."""
    df = _ranked(df)
    if df.empty:
        return df
    df = _skew_carried(df)
    return _ungrouped(df) if engine in GROUPED_GATE_ENGINES else df


def moe_tables(paths: list[Path | pd.DataFrame], balanced: bool = False, engine: str = "",
               twins: Mapping[Path, Path] | None = None) -> dict[str, tuple[Table, np.ndarray]]:
    """`moe_tables_of` the rows of `paths` (`moe_rows`, with `engine` and `twins`)."""
    return moe_tables_of(moe_rows(paths, engine, twins), balanced)


def moe_tables_of(rows: list[pd.DataFrame], balanced: bool = False,
                  gain: pd.DataFrame | None = None) -> dict[str, tuple[Table, np.ndarray]]:
    """Fused-MoE layer time per weight format: a Table over (shape index 1..K, tokens) and the K x 6 shape keys
    (MOE_SHAPE), from `moe_rows` (newest table first; a shape measured in an earlier table shadows the later ones):
    each shape's skewed curve where measured, else its balanced one. `balanced`: instead, the same tables'
    balanced-routing rows of the shapes whose default curve is the skewed one, at EP >= 2 without expert TP, where
    they are balanced (`_sane_balanced`), each cell at most the skewed one: what an expert-parallel load balancer
    aims at, the `moe_bal.<format>` tables an `eplb` deployment reads; with `gain` (`balancer_gain`: the engine's
    own balancer measured at some of those shapes) the cells it covers are what that balancer achieves instead
    (`_balancer_applied`)."""
    frames = []
    seen: set[tuple] = set()
    for df in rows:
        key_cols = ["moe_dtype", *MOE_SHAPE]
        best = df.groupby(key_cols)["_rank"].transform("min")
        keys = df[df["_rank"] == best][key_cols].drop_duplicates()
        fresh = [tuple(r) not in seen for r in keys.itertuples(index=False)]
        keys = keys[fresh]
        seen.update(tuple(r) for r in keys.itertuples(index=False))
        if balanced:
            sk = df[(df["_rank"] == 0) & (df["moe_ep_size"] >= 2) & (df["moe_tp_size"] == 1)]
            df = df[df["_rank"] == 1].merge(keys.merge(sk[key_cols].drop_duplicates(), on=key_cols), on=key_cols)
            sane = _sane_balanced(df, sk, key_cols)
            # a balancer never leaves the busiest rank busier than the skewed draw did: where a cell's balanced
            # layer is the slower one (few tokens: the experts' weight reads, another kernel's cell), the skewed
            # cell stands (`_keyed` keeps the fastest row of a cell)
            df = pd.concat([df.merge(sane, on=key_cols), sk.merge(sane, on=key_cols)])
        else:
            df = df[df["_rank"] == best].merge(keys, on=key_cols)
        frames.append(df)
    if not frames:
        return {}
    df = pd.concat(frames)
    if balanced and gain is not None and len(gain):
        df = _balancer_applied(df, gain)
    out: dict[str, tuple[Table, np.ndarray]] = {}
    for dt, d in df.groupby("moe_dtype"):
        if not len(d):
            continue
        ax, v, shapes, cov = _keyed(d, list(MOE_SHAPE), "num_tokens")
        ok = np.isfinite(v).all(axis=1)
        if not ok.all():  # a shape measured at one token count only: dropped
            v, cov = v[ok], cov[ok]
            shapes = shapes[ok[:len(shapes)]]
            ax = (np.arange(1.0, len(v) + 1), ax[1])
        if len(v) < 2 or len(ax[1]) < 2:
            continue
        out[str(dt)] = (Table(("shape_key", "num_tokens"), ax, v, cov), shapes)
    return out


#: TensorRT-LLM's wide-EP MoE table (aiconfigurator-core `systems/data/<system>/moe/trtllm/1.3.0rc10/`, H100 / H200
#: fp8_block, B200 / B300 / GB200 / GB300 NVFP4, kernel wideep_compute_cutlass; hidden 3072 / 6144 / 7168, top-8 of
#: 256 / 384 experts, EP 2-256): EP rank 0's expert compute, no all-to-all, at each global token count (every
#: attention-DP rank's tokens, as the fused tables' num_tokens), once for a power-law draw with the busiest rank
#: swapped to rank 0 and once for the same draw after TensorRT-LLM's balancer placed the experts' slots on the ranks
#: (greedy by load, redundant copies of the hottest experts where slots > experts) with the slowest rank after
#: placement timed (aiconfigurator's collector/helper.py `_generate_power_law_distribution_with_eplb`). TensorRT-LLM
#: runs its load balancer in the CUTLASS, TRTLLM-gen, CuteDSL and DeepGEMM backends too (NVIDIA/TensorRT-LLM#8886,
#: #10617; the WIDEEP backend is deprecated), so the ratio of the two routings is the balancer's gain on the kernels
#: the fused tables time
WIDEEP_FILE = "wideep_moe_perf.parquet"
#: (as drawn, balanced by the balancer) at the power law the fused tables' skewed curves carry
WIDEEP_ROUTINGS = ("power_law_1.01", "power_law_1.01_eplb")


def balancer_gain(path: Path) -> pd.DataFrame:
    """TensorRT-LLM's load balancer's gain per (moe_dtype, MOE_SHAPE, num_tokens) from its wide-EP table at `path`
    (`WIDEEP_FILE`): the balanced routing's layer time over the skewed one's (`WIDEEP_ROUTINGS`), with as many slots
    as experts (no redundant copies: what a deployment whose EP size divides the experts asks for), at EP >= 2, at
    token counts whose expert picks outnumber the experts (tokens x top-k > experts: below, the collector draws the
    expert loads from another range, and its skewed draw piles the batch on the timed rank: DeepSeek-V3's shape at
    one token, EP 8, H200 takes 0.138 ms skewed against 0.053 ms balanced, where the fused table's skewed draw takes
    0.040 ms). A cell is one draw, so each shape's ratios are a running median over three adjacent token counts.
    Column `gain` (dimensionless; empty without both routings)."""
    df = _read(path, ("moe_dtype", "num_tokens", "num_slots", "distribution", "latency") + MOE_SHAPE)
    df = df[(df["num_slots"] == df["num_experts"]) & df["distribution"].isin(WIDEEP_ROUTINGS)
            & (df["moe_ep_size"] >= 2) & (df["num_tokens"] * df["topk"] > df["num_experts"])]
    keys = ["moe_dtype", *MOE_SHAPE]
    cell = df.groupby([*keys, "num_tokens", "distribution"])["latency"].min().unstack("distribution")
    if any(r not in cell.columns for r in WIDEEP_ROUTINGS):
        return pd.DataFrame(columns=[*keys, "num_tokens", "gain"])
    r = (cell[WIDEEP_ROUTINGS[1]] / cell[WIDEEP_ROUTINGS[0]]).dropna()
    r = r.groupby(level=keys, group_keys=False).apply(lambda s: s.rolling(3, center=True, min_periods=1).median())
    return r.rename("gain").reset_index()


def _balancer_applied(df: pd.DataFrame, gain: pd.DataFrame) -> pd.DataFrame:
    """The rows `moe_tables_of(balanced=True)` keys (both routings of each shape; `_keyed` keeps a cell's fastest)
    with each cell `gain` covers replaced by one row: the skewed cell x the gain, no faster than the cell's balanced
    routing (a balancer does not beat an even split) and no slower than the skewed draw. Where the balancer falls
    short of the even split the layer is slower than the balanced routing's: most at large EP, where a rank holds
    few experts (one at EP 256 of 256 experts: nothing to move without redundant slots)."""
    cols = ["moe_dtype", *MOE_SHAPE, "num_tokens"]
    as_float = {c: float for c in cols[1:]}
    d = df.astype(as_float)
    sk = d[d["_rank"] == 0].groupby(cols, as_index=False)["latency"].min().rename(columns={"latency": "skewed"})
    cells = d.groupby(cols, as_index=False)["latency"].min().merge(sk, on=cols).merge(gain.astype(as_float), on=cols)
    if cells.empty:
        return df
    cells["latency"] = np.clip(cells["skewed"] * cells["gain"], cells["latency"], cells["skewed"])
    hit = d[cols].merge(cells[cols].assign(_hit=True), on=cols, how="left")["_hit"].notna().to_numpy()
    return pd.concat([df[~hit], cells[[*cols, "latency"]].assign(_rank=1)], ignore_index=True)


#: DeepEP tables: (file, kind, {op: time column (µs)}); the normal kernels' time per SM setting (fastest kept)
DEEPEP_FILES = (("wideep_deepep_ll_perf.parquet", "ll",
                 {"dispatch": "dispatch_avg_t_us", "combine": "combine_avg_t_us"}),
                ("wideep_deepep_normal_perf.parquet", "normal",
                 {"dispatch": "dispatch_transmit_us", "combine": "combine_transmit_us"}))
#: the keyed shape of a DeepEP table: (hidden, top-k, experts)
DEEPEP_SHAPE = ("hidden_size", "num_topk", "num_experts")


def deepep_frames(d: Path) -> Iterator[tuple[Path, str, dict[str, str], pd.DataFrame]]:
    """(file, kind, {op: time column (µs)}, rows) of each DeepEP kernel table (`DEEPEP_FILES`) in the folder `d`, every
    node count, as read; ValueError naming a file without the node count, tokens per rank, shape
    (`DEEPEP_SHAPE`) or time columns. The one reader of those tables: the in-node profile tables
    (`deepep_tables`) and the scale-out network fit (`objectives.calibration.network.internode_tables`)."""
    for fname, kind, cols in DEEPEP_FILES:
        if not (d / fname).exists():
            continue
        df = pd.read_parquet(d / fname)
        missing = [c for c in ("node_num", "num_token", *DEEPEP_SHAPE, *cols.values()) if c not in df.columns]
        if missing:
            raise ValueError(f"{d / fname}: missing column(s) {missing}")
        yield d / fname, kind, cols, df


def deepep_tables(root: Path, system: str, engine: str, version: str) -> dict[str, tuple[Table, np.ndarray]]:
    """DeepEP dispatch / combine kernel time (ms) inside one node (the tables' node_num 1: EP over the node's GPUs)
    by (shape index 1..K, tokens per rank), keyed by (hidden, top-k, experts): `deepep_ll_{dispatch,combine}`
    (low-latency kernels, what engines run for decode) and `deepep_normal_{dispatch,combine}` (normal kernels,
    prefill; the fastest SM setting per cell). Measured under SGLang; the kernels are the engine-independent DeepEP
    library, so every engine's profile on the GPU carries them (SGLang's own version not above the profile's
    where it has one, else the newest)."""
    vs = [v for v in versions(root, system, "comm", "sglang")
          if any((root / system / "comm" / "sglang" / v / f).exists() for f, _, _ in DEEPEP_FILES)]
    if not vs:
        return {}
    own = [v for v in vs if _vkey(v) <= _vkey(version)] if engine == "sglang" else []
    d = root / system / "comm" / "sglang" / (own or vs)[-1]
    out: dict[str, tuple[Table, np.ndarray]] = {}
    for path, kind, cols, df in deepep_frames(d):
        df = df[df["node_num"] == 1]
        for op, col in cols.items():
            t_ms = pd.to_numeric(df[col], errors="coerce") * 1e-3
            dd = df.assign(latency=t_ms)[np.isfinite(t_ms.to_numpy(float)) & (t_ms.to_numpy(float) > 0)]
            if len(dd[list(DEEPEP_SHAPE)].drop_duplicates()) < 2:  # a Table axis needs two points
                continue
            ax, v, shapes, cov = _keyed(dd, list(DEEPEP_SHAPE), "num_token")  # duplicates (SM settings): fastest
            if not np.isfinite(v).all() or len(ax[1]) < 2:
                log.info("%s: %s %s has unmeasured shapes, dropped", path, kind, op)
                continue
            out[f"deepep_{kind}_{op}"] = (Table(("shape_key", "num_tokens"), ax, v, cov), shapes)
    return out


#: SGLang's DeepEP MoE runner (`--moe-a2a-backend deepep`, DeepGEMM experts; aiconfigurator-core
#: `systems/data/<system>/moe/sglang/<version>/`, collector/sglang/collect_wideep_deepep_moe.py): one EP rank's
#: expert compute (`run_moe_core`: grouped GEMMs and activation on the tokens DeepEP dispatched to it, no dispatch /
#: combine) at DeepSeek-V3's shape, block FP8, EP 2-256 (simulated on 2 GPUs with 256 / (EP / 2) experts), per global
#: token count (the collector's tokens per rank x EP, as the fused tables' num_tokens), power-law routing with the
#: busiest rank swapped to the timed one (helper.py `power_law_deepep_{prefill,decode}`) or uniform routing.
#: (file, kind): "ll" the low-latency layout (masked grouped GEMM over <= 128 tokens per rank, under CUDA graphs:
#: decode), "normal" the contiguous layout (each expert's tokens padded to 128, timed eagerly: prefill)
DEEPEP_MOE_FILES = (("wideep_generation_moe_perf.parquet", "ll"), ("wideep_context_moe_perf.parquet", "normal"))
#: engines whose DeepEP backend runs that runner (the tables are SGLang's own)
DEEPEP_MOE_ENGINES = ("sglang",)


def deepep_moe_rows(root: Path, system: str, engine: str, version: str) -> dict[str, pd.DataFrame]:
    """The DeepEP MoE runner's rows (`DEEPEP_MOE_FILES`) of `engine`'s newest version up to the profile's `version`
    holding both files, per kind ("ll", "normal"), in `moe_rows`' layout (`_rank` 0: power law 1.01, the skew the
    fused tables carry; 1: uniform, read as balanced). Empty for engines outside `DEEPEP_MOE_ENGINES`."""
    if engine not in DEEPEP_MOE_ENGINES:
        return {}
    vs = [v for v in versions(root, system, "moe", engine) if _vkey(v) <= _vkey(version)
          and all((root / system / "moe" / engine / v / f).exists() for f, _ in DEEPEP_MOE_FILES)]
    if not vs:
        return {}
    out = {}
    for fname, kind in DEEPEP_MOE_FILES:
        df = _read(root / system / "moe" / engine / vs[-1] / fname,
                   ("moe_dtype", "num_tokens", "distribution", "latency") + MOE_SHAPE)
        df = df.assign(distribution=df["distribution"].replace({"uniform": "balanced"}))
        rows = moe_rows([df], engine)
        if rows:
            out[kind] = rows[0]
    return out


def deepep_moe_carried(runner: pd.DataFrame, fused: list[pd.DataFrame]) -> tuple[pd.DataFrame, list[tuple]]:
    """The runner's rows (`deepep_moe_rows`, one kind) and, for each other family of the fused tables' rows
    (`moe_rows`) that shares a runner family's format, top-k and expert count, rows carried from the nearest such
    runner family U the way `_ungrouped` carries a family's EP scaling: t(e, T) = t_F(1, T) x t_U,runner(e, T) /
    t_U(1, T), the family's and U's EP 1 fused curves (the first table holding each), each routing from its own, at
    every token count the runner measured (the ratio t_F(1, T) / t_U(1, T) held beyond the fused curves' last cell,
    where the measured path reads both in proportion to the tokens).
    Second: the carried families (MOE_FAMILY tuples), whose cells are extrapolations."""
    if not len(runner) or not fused:
        return runner, []
    keys = ["moe_dtype", *MOE_SHAPE]
    run_fams = set(map(tuple, runner[list(MOE_FAMILY)].drop_duplicates().itertuples(index=False)))
    ep1: dict[tuple, pd.DataFrame] = {}
    for df in fused:   # newest table first: a family's EP 1 curves from the first table holding them
        d = df[(df["moe_tp_size"] == 1) & (df["moe_ep_size"] == 1)]
        for fam, g in d.groupby(list(MOE_FAMILY)):
            ep1.setdefault(tuple(fam), g.groupby(["_rank", "num_tokens"])["latency"].min().unstack("num_tokens"))
    run = runner.groupby([*keys, "_rank", "num_tokens"])["latency"].min().unstack("num_tokens")
    new_rows: list[pd.DataFrame] = []
    carried: list[tuple] = []
    for fam, f1 in ep1.items():
        if fam in run_fams or (u := _nearest_family(fam, run_fams)) is None or u not in ep1:
            continue
        u1, before = ep1[u], len(new_rows)
        for (*_, ep, rk) in [i for i in run.index if tuple(i[:5]) == u and i[5] == 1]:
            if rk not in f1.index or rk not in u1.index:
                continue
            ratio, t = (f1.loc[rk] / u1.loc[rk]).dropna(), run.loc[(*u, 1, ep, rk)].dropna()
            if len(ratio) < 2:
                continue
            # between the fused curves' cells log-interpolated, beyond them held (both read in proportion there)
            t = t * np.interp(np.log(t.index.to_numpy(float)), np.log(ratio.index.to_numpy(float)), ratio.to_numpy())
            if len(t) >= 2:
                new_rows.append(_family_rows(fam, int(ep), t, int(rk)))
        if len(new_rows) > before:
            carried.append(fam)
    return pd.concat([runner, *new_rows], ignore_index=True), carried


def deepep_moe_tables(runner: Mapping[str, pd.DataFrame], fused: list[pd.DataFrame]
                      ) -> dict[str, tuple[Table, np.ndarray]]:
    """The DeepEP MoE runner's layer per kind and weight format, keyed as the fused tables (`moe_tables_of`):
    `moe_deepep_<kind>.<format>` (power-law routing, the busiest rank) and `moe_deepep_<kind>_bal.<format>` (the
    uniform routing an `eplb` deployment aims at, no slower than the skewed cell), with the families of the same
    format, top-k and expert count carried from them (`deepep_moe_carried`; their cells not `covered`)."""
    out: dict[str, tuple[Table, np.ndarray]] = {}
    for kind, rows in runner.items():
        rows, carried = deepep_moe_carried(rows, fused)
        for suffix, bal in (("", False), ("_bal", True)):
            for fmt, (t, shapes) in moe_tables_of([rows], balanced=bal).items():
                mine = np.array([(fmt, *s[:4]) in set(carried) for s in shapes.tolist()] + [False] * (
                    len(t.axes[0]) - len(shapes)))
                if mine.any():
                    cov = np.ones(t.log_ms.shape, dtype=bool) if t.covered is None else t.covered.copy()
                    cov[mine] = False
                    t = Table(t.names, t.axes, t.log_ms, cov)
                out[f"moe_deepep_{kind}{suffix}.{fmt}"] = (t, shapes)
    return out


#: systems whose collected collectives beyond a number of ranks ran on a degraded path of the collection machine,
#: not on the GPUs' links: {system: the largest rank count whose cells are kept as measured}. aiconfigurator-core's
#: L40S tables (NCCL 2.27.3 nccl-tests, and vLLM / SGLang / TensorRT-LLM, which fall back to NCCL on more than two
#: PCIe GPUs) reach 19-20 GB/s of all-reduce bus bandwidth over 2 GPUs (PCIe Gen4 x16, ~25 GB/s per direction) but
#: 3.7-5.1 GB/s over 4 and 1.5-2.3 GB/s over 8 at every message from 1 M elements up, where the RTX PRO 6000 and Arc
#: Pro B60 boxes (PCIe, no NVLink either) keep 20-24 GB/s over 8; TensorRT-LLM's published L40S first-token latencies
#: at TP 4 / 8 (Llama-2-70B, Falcon-180B fp8) are 2.5-8x below what those cells imply and match the catalog's PCIe
#: link (docs/topology.md, "PCIe boxes")
DEGRADED_COMM_RANKS: Mapping[str, int] = {"l40s": 2}


def ring_from_ranks(t: Table, good: int) -> Table:
    """Comm table `t` (GPUs, message elements) with its rank rows beyond `good` GPUs re-derived from the `good`-GPU
    row: each such row keeps its own smallest-message latency and adds the `good` row's time above that latency
    scaled by the ring's traffic per rank, (n - 1) / n over (good - 1) / good (all-reduce, all-gather,
    reduce-scatter and all-to-all alike), never above what was measured; those cells count as not measured
    (`Table.covered`), so a lookup there reports itself extrapolated. `good` must be a measured rank count below
    the table's largest."""
    ranks = t.axes[0]
    if good not in ranks or good >= ranks[-1]:
        raise ValueError(f"ring_from_ranks: good = {good} must be one of the table's rank counts below its largest "
                         f"({ranks.tolist()})")
    ms = np.exp(t.log_ms)
    g = int(np.searchsorted(ranks, good))
    base = ms[g] - ms[g, 0]
    scale = (ranks - 1.0) / ranks / ((good - 1.0) / good)
    derived = ms[:, :1] + scale[:, None] * base[None, :]
    beyond = ranks > good
    out = np.where(beyond[:, None], np.minimum(ms, derived), ms)
    cov = np.ones(ms.shape, dtype=bool) if t.covered is None else np.asarray(t.covered, dtype=bool).copy()
    cov[beyond] = False
    return Table(t.names, t.axes, np.log(out), cov)


def comm_tables(root: Path, system: str, engine: str, version: str) -> dict[str, Table]:
    """The engine's custom all-reduce and NCCL's collectives of `system` by (GPUs, message elements); a
    `DEGRADED_COMM_RANKS` system's rank rows beyond its healthy ones re-derived (`ring_from_ranks`)."""
    out = _comm_tables(root, system, engine, version)
    good = DEGRADED_COMM_RANKS.get(system)
    if good is not None:
        out = {k: ring_from_ranks(t, good) for k, t in out.items()}
    return out


def _comm_tables(root: Path, system: str, engine: str, version: str) -> dict[str, Table]:
    out: dict[str, Table] = {}
    vs = versions(root, system, "comm", engine)
    # the engine's custom all-reduce: the newest version not above the profile's, else the oldest newer one
    older = [v for v in vs if _vkey(v) <= _vkey(version)]
    pick = (older or vs)[-1:] if vs else []
    for v in pick:
        f = root / system / "comm" / engine / v / "custom_allreduce_perf.parquet"
        if f.exists():
            df = _read(f, ("num_gpus", "message_size", "latency"))
            if "backend" in df.columns and df["backend"].astype(str).str.endswith("graph").any():
                df = df[df["backend"].astype(str).str.endswith("graph")]
            t = _table(df, ["num_gpus", "message_size"], [1, 0], size_axis=1)
            if t is not None:
                out["custom_allreduce"] = t
    nv = versions(root, system, "comm", "nccl")
    if nv:
        f = root / system / "comm" / "nccl" / nv[-1] / "nccl_perf.parquet"
        if f.exists():
            df = _read(f, ("op_name", "nccl_dtype", "num_gpus", "message_size", "latency"))
            df = df[df["nccl_dtype"].astype(str) == "half"]
            for op, d in df.groupby("op_name"):
                t = _table(d, ["num_gpus", "message_size"], [1, 0], size_axis=1)
                if t is not None:
                    out[f"nccl_{op}"] = t
    return out


#: engines whose `fp8` GEMM rows time the per-tensor FP8 Linear with a dynamic activation scale, and whose
#: `quantize/<engine>/<version>/computescale_perf.parquet` times that scale's overhead at the same (m, k): the
#: profile also carries `gemm.fp8_static` (`static_fp8_gemm`), the Linear with the checkpoint's static activation
#: scale. TensorRT-LLM: aiconfigurator's collector (collector/trtllm/collect_gemm.py) loads fp8 weights without an
#: `input_scale`, so `FP8QDQLinearMethod.apply` runs `quantize_e4m3_per_tensor` (amax, scale, quantize) before the
#: GEMM; its compute-scale collector (collect_computescale.py) times that against `static_quantize_e4m3_per_tensor`
#: (the path with the checkpoint's `input_scale`, ModelOpt's FP8). vLLM's and SGLang's fp8 rows time their own fused
#: quantize (their overhead tables read 0-1.2 us at decode sizes against TensorRT-LLM's 7-9 us) and are not listed
DYNAMIC_FP8_GEMM_ENGINES = ("trtllm",)
#: the compute-scale overhead table of `DYNAMIC_FP8_GEMM_ENGINES`, under `quantize/<engine>/<version>/`
COMPUTE_SCALE_FILE = "computescale_perf.parquet"


def static_fp8_gemm(dyn: Table, path: Path, fp8_tflops: float, mem_tbs: float) -> Table | None:
    """The per-tensor FP8 GEMM with a static activation scale: `dyn` (the `gemm.fp8` table, dynamic scale, by
    (m, n, k), ms) less the compute-scale overhead `path` measured by (m, k) (ms; the overhead is the dynamic
    quantize less the static one, so the static quantize stays in), at least the GEMM's roofline on the datasheet
    (`fp8_tflops` dense FP8 TFLOP/s, `mem_tbs` TB/s: FP8 weights and activations in, 16-bit results out), as
    `less_quantize`. None if the overhead table is too sparse. The collector writes max(0, dynamic - static): its 0
    cells (21 of L40S's 1,628 and 15 of the RTX PRO 6000's, all at 4k-33k tokens, where the neighbouring cells read
    10-60 us) are two noisy timings, filled from their neighbours."""
    return less_quantize(dyn, path, fp8_tflops, mem_tbs, 1.0)


def less_quantize(t: Table, path: Path, tflops: float, mem_tbs: float, in_bytes: float) -> Table | None:
    """GEMM table `t` (by (m, n, k), ms) less an activation-quantize kernel timed apart by (m, k) in `path` (an
    aiconfigurator quantize table, ms; its fp8 rows, cells <= 0 dropped and filled from their neighbours), at least
    the GEMM's roofline on the datasheet (`tflops` dense TFLOP/s of the GEMM's format, `mem_tbs` TB/s; `in_bytes`
    bytes per weight and per activation element in, 16-bit results out: the two tables are timed apart, so a noisy
    cell of either cannot take a cell below what the GPU can do) or `t`'s cell where that is lower (a weight the L2
    cache holds in the collector's loop), and not falling as m grows (`grid.monotone`). None if the quantize table
    is too sparse. Its `covered` cells are `t`'s."""
    df = pd.read_parquet(path)
    if missing := [c for c in ("m", "k", "latency") if c not in df.columns]:
        raise ValueError(f"{path}: missing column(s) {missing}; a quantize table needs m, k, latency")
    if "quant_dtype" in df.columns:
        df = df[df["quant_dtype"].astype(str) == "fp8"]
    lat = pd.to_numeric(df["latency"], errors="coerce").to_numpy(float)
    q = _table(df[np.isfinite(lat) & (lat > 0) & df["m"].isin(M_KEEP).to_numpy()], ["m", "k"], [0, 1])
    if q is None:
        log.info("%s: quantize table too sparse", path)
        return None
    m, n, k = np.meshgrid(*t.axes, indexing="ij")
    roof = np.maximum(2.0 * m * n * k / (tflops * 1e12),
                      (in_bytes * (n * k + m * k) + 2.0 * m * n) / (mem_tbs * 1e12)) * 1e3
    ms = np.maximum(np.exp(t.log_ms) - q(m, k), np.minimum(roof, np.exp(t.log_ms)))
    return Table(t.names, t.axes, monotone(np.log(ms), 0), t.covered)


#: engines whose `fp4` GEMM rows time the NVFP4 Linear on a 16-bit input, its activation quantize kernel included,
#: and whose serving path hands most NVFP4 GEMMs an input already in NVFP4: the profile also carries
#: `gemm.fp4_fused`, those rows less the quantize kernel (`fused_fp4_gemm`). TensorRT-LLM: aiconfigurator's
#: collector (collector/trtllm/collect_gemm.py) loads the NVFP4 Linear with a static `input_scale` and feeds it a
#: bf16 tensor, so `NVFP4LinearMethod` runs `fp4_quantize` before `nvfp4_gemm`. In serving (`_torch/models/
#: modeling_llama.py` LlamaDecoderLayer, TP > 1) the all-reduce + residual + RMSNorm + NVFP4 quantize is one kernel
#: (`AllReduceFusionOp.RESIDUAL_RMS_NORM_QUANT_NVFP4`) that feeds gate_up (PRE_MLP_FUSION) and the next layer's
#: QKV (POST_MLP_FUSION), and the TRTLLM attention backend writes o_proj's input in NVFP4 (`support_nvfp4_output`,
#: on by default); down_proj takes SwiGLU's 16-bit output and quantizes it apart (`measured._profile_rows`).
FUSED_FP4_GEMM_ENGINES = ("trtllm",)
#: the quantize table that stands for the NVFP4 activation quantize of `FUSED_FP4_GEMM_ENGINES`, under
#: `quantize/<engine>/<version>/`. aiconfigurator ships no fp4-quantize table (every quantize table holds fp8 rows
#: only); its `scale_matrix` times TensorRT-LLM's static per-tensor FP8 quantize (`static_quantize_e4m3_per_tensor`)
#: on the same (m, k) grid: the same one-pass kernel over the m x k 16-bit activation (FP4 writes 0.56 bytes an
#: element where FP8 writes 1)
FP4_QUANTIZE_PROXY_FILE = "scale_matrix_perf.parquet"
#: bytes per NVFP4 element: 4 bits and one E4M3 scale per 16 elements
NVFP4_BYTES = 0.5 + 1.0 / 16


def fused_fp4_gemm(fp4: Table, path: Path, fp4_tflops: float, mem_tbs: float) -> Table | None:
    """The NVFP4 GEMM on an input already quantized: `fp4` (the `gemm.fp4` table, quantize kernel included, by
    (m, n, k), ms) less the quantize kernel `path` (`FP4_QUANTIZE_PROXY_FILE`, by (m, k), ms), at least the NVFP4
    GEMM's roofline on the datasheet (`fp4_tflops` dense FP4 TFLOP/s, `mem_tbs` TB/s), as `less_quantize`. None if
    the quantize table is too sparse."""
    return less_quantize(fp4, path, fp4_tflops, mem_tbs, NVFP4_BYTES)


#: one group of a profile's tables and the shape rows of its keyed ones (`build_one`, `profile.TableGroups`)
_Group = tuple[dict[str, Table], dict[str, np.ndarray]]


def build_one(root: Path, system: str, engine: str, version: str, source: str,
              cache: bool = False) -> KernelProfile | None:
    """The compact profile of one (system, engine, version), or None without GEMM tables. Its GEMM tables are built
    here, the others group by group on their first lookup (`profile.TableGroups`). `cache`: read and write each
    group through the on-disk cache (`profiles.cache`; `profile._load` asks for it): the same arrays."""
    base = root / system
    f = base / "gemm" / engine / version / "gemm_perf.parquet"
    if not f.exists():
        return None
    gpu = catalog.gpu(GPU_OF_SYSTEM[system]) if system in GPU_OF_SYSTEM else None

    def gemm() -> _Group:
        peers = [q for e in ENGINES if e != engine and (q := _newest_table(root, system, "gemm", e,
                                                                             "gemm_perf.parquet"))]
        tables = {f"gemm.{k}": t for k, t in gemm_tables(f, _twin_of(root, system, f), peers).items()}
        if not tables:
            return tables, {}
        if system in WEIGHT_ONLY_FP8_SYSTEMS and "gemm.fp8" in tables:
            tables["gemm.fp8_wo"] = tables.pop("gemm.fp8")
        # the GEMMs an engine runs around its quantize kernels (static FP8 scales, FP4 quantization fused in),
        # each derived from the dtype's table, the engine's quantize table and the GPU's roofline
        for engines, dtype, fname, derive, name in (
                (DYNAMIC_FP8_GEMM_ENGINES, "fp8", COMPUTE_SCALE_FILE, static_fp8_gemm, "gemm.fp8_static"),
                (FUSED_FP4_GEMM_ENGINES, "fp4", FP4_QUANTIZE_PROXY_FILE, fused_fp4_gemm, "gemm.fp4_fused")):
            q = _table_upto(root, system, "quantize", engine, version, fname)
            if engine in engines and f"gemm.{dtype}" in tables and q is not None and gpu is not None \
                    and gpu.supports(dtype):
                if (t := derive(tables[f"gemm.{dtype}"], q, gpu.peak_tflops[dtype], gpu.mem_bw_tbs)) is not None:
                    tables[name] = t
        return tables, {}

    from .cache import GroupCache
    store = GroupCache.for_build(root, tuple(s for s in (system, TWIN_SYSTEMS.get(system)) if s), system, engine,
                                 version) if cache else None

    def cached(name: str, builder: Callable[[], _Group], extra: str = "") -> Callable[[], _Group]:
        return builder if store is None else (lambda: store.get(name, builder, extra))

    # the GEMM group also reads the GPU's datasheet numbers (static FP8 / fused FP4 rooflines)
    datasheet = "" if gpu is None else json.dumps([sorted(gpu.peak_tflops.items()), gpu.mem_bw_tbs])
    tables: dict[str, Table] = cached("gemm", gemm, datasheet)()[0]
    if not tables:
        return None
    # the other tables by group, each built on the first lookup of a name it owns (`TableGroups`: a dense model's
    # study never builds the MoE, sparse-attention, DeepSeek-V4 or mHC ones)

    def attention() -> _Group:
        out: dict[str, Table] = {}
        avs = versions(root, system, "attention", engine)
        av = [v for v in avs if _vkey(v) <= _vkey(version)] or avs
        if av:
            d = base / "attention" / engine / av[-1]
            for kind, fname in (("context", "context_attention_perf.parquet"),
                                ("generation", "generation_attention_perf.parquet")):
                if (d / fname).exists():
                    for k, t in attention_tables(d / fname, kind).items():
                        out[f"{kind}_attention.{k}"] = t
        return out, {}

    def mla() -> _Group:
        out: dict[str, Table] = {}
        for eng in (engine, *(e for e in ("sglang", "trtllm") if e != engine)):  # own MLA kernels first
            mvs_ = versions(root, system, "mla", eng)
            mv_ = [v for v in mvs_ if _vkey(v) <= _vkey(version)] or mvs_ if eng == engine else mvs_
            d_mla = base / "mla" / eng / mv_[-1] if mv_ else None
            if (d_mla is not None and (d_mla / "generation_mla_perf.parquet").exists()
                    and (d_mla / "context_mla_perf.parquet").exists()):
                for kind in ("context", "generation"):
                    lane = _trtllm_mla_lane(root, system, kind) if eng != "trtllm" else None
                    if lane is not None and kind == "context":   # prefill: TensorRT-LLM's lane for every KV dtype
                        tabs = mla_tables(lane, kind)
                    else:
                        tabs = mla_tables(d_mla / f"{kind}_mla_perf.parquet", kind)
                        if lane is not None and "fp8" in (trt := mla_tables(lane, kind)):   # decode: its fp8 only
                            tabs["fp8"] = trt["fp8"]
                    for k, t in tabs.items():
                        out[f"mla_{kind}.{k}"] = t
                break
        return out, {}

    svs = versions(root, system, "sparse_attention", engine)
    sv = [v for v in svs if _vkey(v) <= _vkey(version)] or svs

    def dsa() -> _Group:
        out: dict[str, Table] = {}
        for v in reversed(sv):  # the newest version holding the module tables
            d = base / "sparse_attention" / engine / v
            if (d / "dsa_generation_module_perf.parquet").exists() and (d / "dsa_context_module_perf.parquet").exists():
                for kind in ("context", "generation"):
                    for k, t in dsa_tables(d / f"dsa_{kind}_module_perf.parquet", kind).items():
                        out[f"dsa_{kind}.{k}"] = t
                break
        return out, {}

    def msa() -> _Group:
        # MiniMax sparse attention modules: the engine's newest version up to the profile's holding them, else the
        # oldest later one (SGLang 0.5.16 beside the 0.5.14 profile, vLLM 0.24.0); `MSA_ENGINES` only
        out: dict[str, Table] = {}
        qvs = versions(root, system, "msa", engine) if engine in MSA_ENGINES else []
        qv = [v for v in qvs if _vkey(v) <= _vkey(version)]
        for v in [*reversed(qv), *(v for v in qvs if v not in qv)]:
            d = base / "msa" / engine / v
            if any((d / f"msa_{kind}_module_perf.parquet").exists() for kind in ("context", "generation")):
                for kind in ("context", "generation"):
                    if (d / f"msa_{kind}_module_perf.parquet").exists():
                        for k, t in msa_tables(d / f"msa_{kind}_module_perf.parquet", kind).items():
                            out[f"msa_{kind}.{k}"] = t
                break
        return out, {}

    def dsv4() -> _Group:
        # DeepSeek-V4's attention modules: the newest version up to the profile's holding them all, else the oldest
        # later one (TensorRT-LLM measured them in 1.3.0rc23 only, beside the 1.3.0rc20 profile)
        out: dict[str, Table] = {}
        for v in [*reversed(sv), *(v for v in svs if v not in sv)]:
            d = base / "sparse_attention" / engine / v
            files = {(k, st): d / f"dsv4_{k}_{st}_module_perf.parquet" for k in DSV4_KINDS
                     for st in ("context", "generation")}
            if all(f.exists() for f in files.values()):
                for (k, st), f in files.items():
                    for key, t in dsv4_tables(f, k).items():
                        out[f"dsv4_{st}.{key}"] = t
                break
        return out, {}

    def mhc() -> _Group:
        out: dict[str, Table] = {}
        if (f_mhc := _table_upto(root, system, "mhc", engine, version, "mhc_module_perf.parquet")) is not None:
            for k, t in mhc_tables(f_mhc).items():
                out[f"mhc.{k}"] = t
        return out, {}

    def linear() -> _Group:
        out: dict[str, Table] = {}
        if (f_gdn := _table_upto(root, system, "linear_attention", engine, version, "gdn_perf.parquet")) is not None:
            for k, t in gdn_tables(f_gdn).items():
                out[f"linear_attention.{k}"] = t
        f_kda, f_conv = kda_paths(root, system, engine, version)
        if f_kda is not None:
            for k, t in kda_tables(f_kda, f_conv).items():
                out[f"linear_attention.{k}"] = t
        f_m2 = _own_or_lane(root, system, "linear_attention", engine, version, "mamba2_perf.parquet", MAMBA2_LANES)
        if f_m2 is not None:
            for k, t in mamba2_tables(f_m2).items():
                out[f"linear_attention.{k}"] = t
        return out, {}

    def comm() -> _Group:
        out: dict[str, Table] = {}
        keys: dict[str, np.ndarray] = {}
        for k, t in comm_tables(root, system, engine, version).items():
            out[f"comm.{k}"] = t
        for k, (t, shp) in deepep_tables(root, system, engine, version).items():
            out[f"comm.{k}"] = t
            keys[f"comm.{k}"] = shp
        return out, keys

    def moe() -> _Group:
        out: dict[str, Table] = {}
        keys: dict[str, np.ndarray] = {}
        mvs = versions(root, system, "moe", engine)
        mv = [v for v in mvs if _vkey(v) <= _vkey(version)] or mvs[:1]
        paths = [base / "moe" / engine / v / "moe_perf.parquet" for v in reversed(mv)]
        moe_src: list[Path | pd.DataFrame] = [*borrowed_moe_rows(root, system, engine),
                                              *(p for p in paths if p.exists()),
                                              *borrowed_moe_rows(root, system, engine, "fill")]
        twin = {p: tp for p in paths if p.exists() and (tp := _twin_of(root, system, p)) is not None}
        rows = moe_rows(moe_src, engine, twin, pooled=borrowed_moe_rows(root, system, engine, "pool"))
        for k, (t, shp) in moe_tables_of(rows).items():
            out[f"moe.{k}"] = t
            keys[f"moe.{k}"] = shp
        # the balancer the engine runs, where its own table timed it: the newest up to the profile's version
        wv = [v for v in mvs if _vkey(v) <= _vkey(version) and (base / "moe" / engine / v / WIDEEP_FILE).exists()]
        gain = balancer_gain(base / "moe" / engine / wv[-1] / WIDEEP_FILE) if wv else None
        for k, (t, shp) in moe_tables_of(rows, balanced=True, gain=gain).items():
            out[f"moe_bal.{k}"] = t
            keys[f"moe_bal.{k}"] = shp
        for k, (t, shp) in deepep_moe_tables(deepep_moe_rows(root, system, engine, version), rows).items():
            out[k] = t
            keys[k] = shp
        return out, keys

    groups = TableGroups(tables, {}, [
        (("context_attention", "generation_attention"), cached("attention", attention)),
        (("mla_context", "mla_generation"), cached("mla", mla)),
        (("dsa_context", "dsa_generation"), cached("dsa", dsa)),
        (("msa_context", "msa_generation"), cached("msa", msa)),
        (("dsv4_context", "dsv4_generation"), cached("dsv4", dsv4)),
        (("mhc",), cached("mhc", mhc)), (("linear_attention",), cached("linear", linear)),
        (("comm",), cached("comm", comm)), (("moe", "moe_bal", "moe_deepep_"), cached("moe", moe))])
    return KernelProfile(system=system, engine=engine, version=version, source=source,
                         tables=LazyTables(groups, "tables"), keys=LazyTables(groups, "keys"))


#: systems whose MLA prefill kernel (every KV dtype) and fp8-KV decode kernel are read from TensorRT-LLM's lane for
#: every engine.
#: - Prefill: SGLang's own Hopper table (context_mla_perf, kernel "flash_attention", the one vLLM's profile borrows
#:   too) times DeepSeek-V3's 128-head prefill at 8k tokens in 15.9 ms on H200, where TensorRT-LLM's kernel takes
#:   4.8 ms and SGLang's own FA3 MLA module (0.5.10 wideep_context_mla_perf, kernel fa3, projections included)
#:   6.4 ms; both engines run FA3-class kernels there (SGLang's default attention backend for DeepSeek models on
#:   SM90 is fa3).
#: - fp8-KV decode: SGLang's own Hopper table (generation_mla_perf 0.5.14, kernel "flash_attention", borrowed by
#:   vLLM's profile too) times it at 4-7x its bf16 (DeepSeek-V3, 16 heads per GPU, batch 256, 1k context on H200:
#:   0.54 against 0.10 ms per layer), where the other measurements of the same GPU put fp8 at or below bf16:
#:   TensorRT-LLM's kernel 0.05, SGLang 0.5.10's own FA3 module with fp8 KV 0.14 (wideep_generation_mla_perf,
#:   projections included) and vLLM's FlashMLA module with fp8 KV 0.23 against its bf16 module's 0.25
#:   (mla_generation_module_perf, projections included).
#: The bf16 decode tables and the Blackwell tables agree between the lanes and stay the engine's own
MLA_FROM_TRTLLM = ("h100", "h200", "gh200")


def _trtllm_mla_lane(root: Path, system: str, kind: str) -> Path | None:
    """TensorRT-LLM's newest MLA `kind` ("context" / "generation") table on `system` where `MLA_FROM_TRTLLM` names
    it, else None."""
    if not system.startswith(MLA_FROM_TRTLLM):
        return None
    return _newest_table(root, system, "mla", "trtllm", f"{kind}_mla_perf.parquet")


def engines_in(root: Path) -> tuple[str, ...]:
    """Engine folder names with GEMM tables under `root` (<system>/gemm/<engine>/...): vllm, sglang, trtllm in
    aiconfigurator-core, `torch` (or what `--engine` named) in a collector's output."""
    return tuple(sorted({d.name for d in root.glob("*/gemm/*") if d.is_dir()}))


def planned(root: Path, engines: tuple[str, ...] = ENGINES, newest_only: bool = True) -> list[tuple[str, str, str]]:
    """The (system, engine, version) keys `build_all` builds from `root`: each system folder's versions of each
    engine with a GEMM table (the newest only by default)."""
    keys = []
    for sysdir in sorted(p for p in root.iterdir() if p.is_dir()):
        for engine in engines:
            vs = [v for v in versions(root, sysdir.name, "gemm", engine)
                  if (sysdir / "gemm" / engine / v / "gemm_perf.parquet").exists()]
            keys += [(sysdir.name, engine, v) for v in (vs[-1:] if newest_only else vs)]
    return keys


def replaced(root: Path, out: Path, source: str, engines: tuple[str, ...] = ENGINES) -> list[str]:
    """The profiles of `out` a build from `root` would replace with tables of another source: each planned key
    whose file exists in `out` and whose index entry records a different ``source`` text (or none). A rebuild
    from the same source (the same --source text, or by default the same --root folder) is not one."""
    index = {(e["system"], e["engine"], e["version"]): e for e in _index_entries(out / "index.json")}
    clash = []
    for key in planned(root, engines):
        f = out / f"{key[0]}__{key[1]}__{key[2]}.npz"
        if f.exists() and index.get(key, {}).get("source") != source:
            clash.append(f"{f} (built from: {index.get(key, {}).get('source') or 'unrecorded'})")
    return clash


def build_all(root: Path, out: Path, source: str, newest_only: bool = True,
              engines: tuple[str, ...] = ENGINES) -> list[KernelProfile]:
    """Build and save every (system, engine, version) with GEMM tables; returns the profiles written. The index
    of `out` keeps its other profiles: a profile built again replaces its own entry only."""
    out.mkdir(parents=True, exist_ok=True)
    done = []
    index = {(e["system"], e["engine"], e["version"]): e for e in _index_entries(out / "index.json")}
    for system, engine, v in planned(root, engines, newest_only):
        prof = build_one(root, system, engine, v, source)
        if prof is None:
            continue
        save(prof, out / prof.filename)
        done.append(prof)
        index[(prof.system, prof.engine, prof.version)] = {
            "system": prof.system, "engine": prof.engine, "version": prof.version, "file": prof.filename,
            "source": source, "tables": sorted(prof.tables)}
        log.info("built %s", prof.filename)
    entries = [index[k] for k in sorted(index)]
    (out / "index.json").write_text(json.dumps({"profiles": entries}, indent=1) + "\n")
    return done


def build_dated(root: Path, out: Path) -> list[KernelProfile]:
    """Build and save the `DATED_TABLES` profiles whose tables `root` holds into `out` and its index (which must
    list each one's base release on its system: `load` lays the file over it); returns the profiles written."""
    index = {(e["system"], e["engine"], e["version"]): e for e in _index_entries(out / "index.json")}
    done = []
    for (engine, version), (base_v, _, systems, _) in DATED_TABLES.items():
        for system in systems:
            prof = dated_profile(system, root, engine, version) if (system, engine, base_v) in index else None
            if prof is None:
                log.warning("%s %s %s: no base profile in %s or no tables under %s", system, engine, version, out, root)
                continue
            save(prof, out / prof.filename)
            done.append(prof)
            index[(system, engine, version)] = {"system": system, "engine": engine, "version": version,
                                                "file": prof.filename, "source": prof.source,
                                                "tables": sorted(prof.tables)}
    (out / "index.json").write_text(json.dumps({"profiles": [index[k] for k in sorted(index)]}, indent=1) + "\n")
    return done


def _index_entries(path: Path) -> list[dict]:
    """The entries of an existing index.json (each with its `source`; older files held one for all)."""
    if not path.exists():
        return []
    idx = json.loads(path.read_text())
    return [{**e, "source": e.get("source", idx.get("source", ""))} for e in idx.get("profiles", [])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m objectives.profiles.build", description=__doc__.split("\n")[0])
    ap.add_argument("--root", help="folder <system>/<op>/<engine>/<version>/*.parquet "
                                   "(default: the installed aiconfigurator-core's systems/data)")
    ap.add_argument("--out", default=str(DATA_DIR), help="output folder (default: the shipped profiles)")
    ap.add_argument("--source", default=None, help="provenance text stored in each profile")
    ap.add_argument("--force", action="store_true", help="with --root: replace profiles of --out that were built "
                    "from another source (refused without it: e.g. a user's H200 torch collection would overwrite "
                    "the shipped H200 torch profile)")
    ap.add_argument("--dated-root", help="only the `DATED_TABLES` builds' profiles, from this folder "
                    "(<system>/sparse_attention/<engine>/<folder>/, the source's systems/data at the commit "
                    "recorded there), on their base releases' profiles in --out")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.dated_root:
        done = build_dated(Path(a.dated_root), Path(a.out))
        print(f"{len(done)} dated-build profiles written to {a.out}")
        return 0
    root = Path(a.root) if a.root else aiconfigurator_root()
    if a.root and (root is None or not root.is_dir()):
        raise SystemExit(f"--root {a.root!r} is not a folder: give the folder a collector wrote "
                         f"(<system>/<op>/<engine>/<version>/*.parquet, e.g. python -m objectives.profiles.collect "
                         f"--out DIR)")
    if root is None or not root.is_dir():
        raise SystemExit("no kernel tables: install the profiles extra (pip install -e '.[profiles]') or pass --root")
    source = a.source or ("aiconfigurator-core " + _aic_version() + " (Apache-2.0, NVIDIA): systems/data"
                          if not a.root else f"kernel tables under {root}")
    engines = ENGINES if not a.root else engines_in(root)
    if a.root and not a.force and (clash := replaced(root, Path(a.out), source, engines)):
        raise SystemExit(f"refusing to replace {len(clash)} profile(s) built from another source: "
                         f"{'; '.join(clash)}. Collect under a label of your own (objectives.profiles.collect "
                         f"--engine / --version), build into another --out, or pass --force to replace them")
    done = build_all(root, Path(a.out), source, engines=engines)
    print(f"{len(done)} profiles written to {a.out}")
    from .profile import GPU_OF_SYSTEM
    valid = ", ".join(f"{s} ({g})" for s, g in sorted(GPU_OF_SYSTEM.items()))
    for p in done:   # the model looks a GPU's profile up by its system name only (`profile.SYSTEMS`)
        if p.system not in GPU_OF_SYSTEM:
            print(f"warning: {p.key}: system {p.system!r} is no catalog GPU's kernel-table system, so no GPU reads "
                  f"this profile; collect again with --system NAME (valid: {valid})", file=sys.stderr)
    return 0


def _aic_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("aiconfigurator-core")
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
