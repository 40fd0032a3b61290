"""Measure GEMM, attention and all-reduce latencies on the user's own device into aiconfigurator-core's table layout.

    python -m objectives.profiles.collect --out DIR [--system NAME] [--engine torch] [--device cuda|cpu]
                                          [--quick] [--dtypes bf16,fp8] [--max-m 8192] [--ranks 2,4,8]

writes, for system S, engine E (default ``torch``) and version V (default: the installed torch version),

- ``DIR/S/gemm/E/V/gemm_perf.parquet``: framework, version, device, op_name ("gemm"), kernel_source, gemm_dtype
  ("bfloat16" | "float16" | "float32" | "fp8", spelled as aiconfigurator-core spells them), m, n, k, latency;
- ``DIR/S/attention/E/V/context_attention_perf.parquet`` and ``generation_attention_perf.parquet``: framework,
  version, device, op_name ("context_attention" | "generation_attention"), kernel_source, batch_size, isl,
  num_heads, num_key_value_heads, head_dim, beam_width, attn_dtype, kv_cache_dtype, step, window_size, latency.
  As in aiconfigurator-core's collectors, a context row has ``isl`` = prompt tokens and ``step`` = 0; a generation
  row has ``isl`` = 1 (the one query token) and ``step`` = the KV history before it, so the attention reads
  ``step + 1`` KV positions;
- ``DIR/S/comm/E/V/custom_allreduce_perf.parquet`` (only with two or more ranks): framework, version, device,
  op_name ("all_reduce"), kernel_source, allreduce_dtype, num_gpus, message_size (ELEMENTS per rank, as in
  aiconfigurator-core, where the collector allocates a tensor of ``message_size`` elements), latency, backend;
- a ``collection_meta.yaml`` next to each table set (schema_version 1, the runtime and the timing method).

Latency is always in milliseconds. GPU timing: CUDA events around a CUDA-graph replay of ``inner`` calls (eager
loop where capture fails), after warm-up, the median over repeats divided by ``inner``. CPU timing:
``time.perf_counter`` around ``inner`` calls, median over repeats. GEMM is ``torch.nn.functional.linear`` (activation
m x k, weight n x k) and, for fp8, the bf16 activation's cast to fp8 plus ``torch._scaled_mm`` with per-tensor
scales, as an engine's fp8 linear runs (m padded to a multiple of 16, the kernel's alignment, as engines pad); attention is ``torch.nn.functional.scaled_dot_product_attention`` with
``enable_gqa`` (causal for context, one query token against ``step + 1`` KV positions for generation); all-reduce is
``torch.distributed.all_reduce`` (NCCL on GPUs, gloo on CPU) in one process per rank.

A dtype the device cannot run, and fp8 KV caches (SDPA has no fp8 path), are skipped with a log line; with one device
no comm table is written and the log says why (on CPU, ``--ranks 2`` measures gloo all-reduce between processes).
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

#: dtype names accepted on the command line -> the spelling in aiconfigurator-core's tables
DTYPE_ALIASES: dict[str, str] = {
    "bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16", "half": "float16",
    "fp32": "float32", "float32": "float32", "float": "float32", "fp8": "fp8", "float8": "fp8",
    "float8_e4m3fn": "fp8",
}
#: (substring of the upper-cased device name, aiconfigurator-core system name); first match wins
SYSTEM_PATTERNS: tuple[tuple[str, str], ...] = (
    ("GB300", "gb300"), ("GB200", "gb200"), ("B300", "b300_sxm"), ("B200", "b200_sxm"),
    ("H200", "h200_sxm"), ("H100 PCIE", "h100_pcie"), ("H100", "h100_sxm"),
    ("A100-PCIE", "a100_pcie"), ("A100 PCIE", "a100_pcie"), ("A100", "a100_sxm"), ("A30", "a30"),
    ("L40S", "l40s"), ("L4", "l4"), ("RTX PRO 6000", "rtx_pro_6000_server"),
)
ENGINE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
GEMM_COLUMNS = ["framework", "version", "device", "op_name", "kernel_source", "gemm_dtype", "m", "n", "k", "latency"]
ATTN_COLUMNS = ["framework", "version", "device", "op_name", "kernel_source", "batch_size", "isl", "num_heads",
                "num_key_value_heads", "head_dim", "beam_width", "attn_dtype", "kv_cache_dtype", "step",
                "window_size", "latency"]
ALLREDUCE_COLUMNS = ["framework", "version", "device", "op_name", "kernel_source", "allreduce_dtype", "num_gpus",
                     "message_size", "latency", "backend"]
_INT_COLUMNS = {"m", "n", "k", "batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "beam_width",
                "step", "window_size", "num_gpus", "message_size"}


@dataclass(frozen=True)
class Grid:
    """The shapes measured (token counts, heads, elements)."""

    gemm_m: tuple[int, ...]
    gemm_nk: tuple[int, ...]
    ctx_batch: tuple[int, ...]
    ctx_isl: tuple[int, ...]
    ctx_heads: tuple[int, ...]
    ctx_max_tokens: int
    gen_batch: tuple[int, ...]
    gen_kv: tuple[int, ...]  # KV positions read (step + 1)
    gen_kv_heads: tuple[int, ...]
    gen_max_tokens: int
    head_dim: int
    gqa: int  # query heads per KV head
    ar_sizes: tuple[int, ...]  # all-reduce message sizes (elements)
    gemm_n_extra: tuple[int, ...] = ()  # output widths beyond gemm_nk (fused gate/up, LM heads)
    gemm_k_extra: tuple[int, ...] = ()  # reduction depths beyond gemm_nk (down projections of wide FFNs)

    @property
    def gemm_n(self) -> tuple[int, ...]:
        return self.gemm_nk + self.gemm_n_extra

    @property
    def gemm_k(self) -> tuple[int, ...]:
        return self.gemm_nk + self.gemm_k_extra


def _pow2(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(2 ** i for i in range(int(math.log2(lo)), int(math.log2(hi)) + 1))


def make_grid(quick: bool, device: str, max_m: int | None = None) -> Grid:
    """The default measurement grid: tiny with `quick` (CI on CPU, seconds), engine-sized otherwise."""
    if quick:
        g = Grid(gemm_m=(1, 4, 16, 64), gemm_nk=(64, 128, 256), ctx_batch=(1, 2), ctx_isl=(16, 64, 256),
                 ctx_heads=(2, 4), ctx_max_tokens=512, gen_batch=(1, 4), gen_kv=(2, 16, 128),
                 gen_kv_heads=(1, 2), gen_max_tokens=512, head_dim=128, gqa=2, ar_sizes=(128, 1024, 8192))
    elif device == "cpu":
        g = Grid(gemm_m=_pow2(1, 1024), gemm_nk=_pow2(128, 4096), ctx_batch=(1, 2, 4), ctx_isl=_pow2(16, 2048),
                 ctx_heads=(8, 16, 32), ctx_max_tokens=4096, gen_batch=_pow2(1, 32), gen_kv=_pow2(2, 4096),
                 gen_kv_heads=(1, 2, 4, 8), gen_max_tokens=32768, head_dim=128, gqa=8,
                 ar_sizes=_pow2(128, 2 ** 22))
    else:
        m = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 512, 768, 1024, 1536, 2048, 3072, 4096, 8192, 16384)
        g = Grid(gemm_m=m, gemm_nk=(128, 256, 512, 1024, 2048, 3072, 4096, 6144, 8192, 12288, 16384),
                 ctx_batch=(1, 2, 4, 8, 16, 32), ctx_isl=_pow2(16, 16384), ctx_heads=(4, 8, 16, 32, 64),
                 ctx_max_tokens=131072, gen_batch=_pow2(1, 256), gen_kv=_pow2(2, 131072),
                 gen_kv_heads=(1, 2, 4, 8), gen_max_tokens=2 ** 20, head_dim=128, gqa=8,
                 ar_sizes=_pow2(128, 2 ** 29), gemm_n_extra=(24576, 32768, 65536, 131072),
                 gemm_k_extra=(24576, 32768))
    if max_m is not None:
        if max_m < 1:
            raise ValueError(f"--max-m must be a positive token count, got {max_m}")
        ms = tuple(x for x in g.gemm_m if x <= max_m)
        g = Grid(**{**g.__dict__, "gemm_m": ms or (1,)})
    return g


def parse_dtypes(spec: str) -> list[str]:
    """'bf16,fp8' -> ['bfloat16', 'fp8'] (aiconfigurator-core spellings); unknown names raise ValueError."""
    out: list[str] = []
    for raw in spec.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in DTYPE_ALIASES:
            raise ValueError(f"--dtypes: unknown dtype {raw.strip()!r}; valid: {sorted(DTYPE_ALIASES)}")
        if DTYPE_ALIASES[name] not in out:
            out.append(DTYPE_ALIASES[name])
    if not out:
        raise ValueError("--dtypes: no dtype given; valid: bf16, fp16, fp32, fp8")
    return out


def slug(name: str) -> str:
    """'NVIDIA RTX 4090' -> 'nvidia_rtx_4090' (lowercase, runs of other characters -> '_')."""
    s = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return s or "unknown"


def system_name(device_name: str) -> str:
    """aiconfigurator-core's system name for a device name ('NVIDIA H200' -> 'h200_sxm'), else its slug."""
    up = device_name.upper()
    for pat, system in SYSTEM_PATTERNS:
        if re.search(r"(?<![A-Z0-9])" + re.escape(pat) + r"(?![0-9])", up):
            return system
    return slug(device_name)


def unusable_system(system: str, device: str, device_name: str) -> str | None:
    """Why a profile built from tables collected under `system` would cost no catalog GPU (None when `system` is
    the kernel-table system of one, `profiles.profile.SYSTEMS`): the model looks a GPU's profile up by that name
    only, so a CPU's (or an unlisted GPU's) slug is used by nothing until collected again with --system."""
    from .profile import GPU_OF_SYSTEM

    if system in GPU_OF_SYSTEM:
        return None
    what = "a CPU" if device == "cpu" else "a device no catalog GPU maps to"
    valid = ", ".join(f"{s} ({g})" for s, g in sorted(GPU_OF_SYSTEM.items()))
    return (f"system {system!r} (from {device_name!r}, {what}) is no catalog GPU's kernel-table system: a profile "
            f"built from these tables is used by no GPU. Pass --system NAME to file them under the GPU they stand "
            f"for; valid names (catalog GPU): {valid}")


def cpu_name() -> str:
    """The CPU model name (from /proc/cpuinfo where readable), else the platform's processor/machine name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


# ---------------------------------------------------------------------------------------------------- timing


@dataclass
class Timer:
    """Median latency (ms) of a zero-argument callable on `device` ('cpu' or 'cuda[:i]').

    After `warmup` calls one timed probe sizes the loop: `inner` calls per repeat at most, fewer for slow ops (a
    repeat aims at `target_ms`), and a third of the `repeats` (at least 3) when one repeat exceeds `long_ms`.
    """

    device: str
    warmup: int = 3
    repeats: int = 7
    inner: int = 5
    use_graphs: bool = True
    target_ms: float = 1.0
    long_ms: float = 20.0
    graph_failures: int = field(default=0, init=False)

    def _plan(self, probe_ms: float) -> tuple[int, int]:
        inner = max(1, min(self.inner, math.ceil(self.target_ms / max(probe_ms, 1e-4))))
        repeats = self.repeats if probe_ms * inner <= self.long_ms else max(3, self.repeats // 3)
        return inner, repeats

    def __call__(self, fn: Callable[[], Any]) -> float:
        import torch
        if self.device == "cpu":
            for _ in range(self.warmup):
                fn()
            t0 = time.perf_counter()
            fn()
            inner, repeats = self._plan((time.perf_counter() - t0) * 1e3)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(inner):
                    fn()
                times.append((time.perf_counter() - t0) * 1e3 / inner)
            return float(statistics.median(times))
        for _ in range(self.warmup):
            fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        inner, repeats = self._plan(start.elapsed_time(end))
        run: Callable[[], Any]
        graph = None
        if self.use_graphs:
            try:
                stream = torch.cuda.Stream(self.device)
                stream.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(stream):
                    fn()  # warm-up on a side stream, as capture requires
                torch.cuda.current_stream(self.device).wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    for _ in range(inner):
                        fn()
                graph.replay()
                torch.cuda.synchronize(self.device)
            except RuntimeError as e:  # an op without capture support: time the eager loop instead
                self.graph_failures += 1
                log.debug("CUDA graph capture failed (%s); eager timing", e)
                graph = None
        if graph is not None:
            run = graph.replay
        else:
            def run() -> None:
                for _ in range(inner):
                    fn()
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / inner)
        return float(statistics.median(times))


# ---------------------------------------------------------------------------------------------------- ops


def _torch_dtype(name: str) -> Any:
    import torch
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32,
            "fp8": torch.float8_e4m3fn}[name]


def dtype_supported(name: str, device: str) -> tuple[bool, str]:
    """(whether `device` runs GEMMs in dtype `name`, why not)."""
    import torch
    if name == "fp8":
        if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
            return False, "this torch build has no float8_e4m3fn / _scaled_mm"
        if device.startswith("cuda"):
            cc = torch.cuda.get_device_capability(device)
            if cc < (8, 9):
                return False, f"compute capability {cc[0]}.{cc[1]} < 8.9 has no fp8 tensor cores"
    if name == "bfloat16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        return False, "the device does not support bfloat16"
    try:  # the device itself is the final judge
        _gemm_fn(name, 16, 32, 32, device)()
    except (RuntimeError, TypeError, NotImplementedError) as e:
        return False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return True, ""


def _gemm_fn(dtype: str, m: int, n: int, k: int, device: str) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F
    if dtype == "fp8":
        # an engine's fp8 linear (per-tensor static scale, e.g. vLLM's Fp8LinearMethod) casts its bf16 activation
        # to fp8 in one elementwise kernel before the scaled GEMM: both are timed, as in the engines' own tables
        mp = -(-m // 16) * 16
        x = torch.randn(mp, k, device=device, dtype=torch.bfloat16)
        w = torch.randn(n, k, device=device, dtype=torch.bfloat16).to(torch.float8_e4m3fn)
        one = torch.tensor(1.0, device=device)
        wt = w.t()  # column-major (k, n), the layout _scaled_mm wants
        return lambda: torch._scaled_mm(x.to(torch.float8_e4m3fn), wt, scale_a=one, scale_b=one,
                                        out_dtype=torch.bfloat16)
    td = _torch_dtype(dtype)
    a = torch.randn(m, k, device=device, dtype=td)
    w = torch.randn(n, k, device=device, dtype=td)
    return lambda: F.linear(a, w)


def gemm_kernel_source(dtype: str) -> str:
    """The kernel_source label written for a GEMM dtype."""
    return "torch._scaled_mm+activation_cast" if dtype == "fp8" else "torch.nn.functional.linear"


def _measure(timer: Timer, make: Callable[[], Callable[[], Any]], what: str, device: str) -> float | None:
    """timer(make()) in ms, or None (logged) when the shape does not run: out of memory, or no kernel for it."""
    import torch
    try:
        return timer(make())
    except RuntimeError as e:  # torch.OutOfMemoryError is a RuntimeError too
        log.warning("%s skipped: %s", what, str(e).splitlines()[0] if str(e) else type(e).__name__)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        return None


def _attn_fn(batch: int, q_len: int, kv_len: int, heads: int, kv_heads: int, head_dim: int, dtype: str,
             causal: bool, device: str) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F
    td = _torch_dtype(dtype)
    q = torch.randn(batch, heads, q_len, head_dim, device=device, dtype=td)
    k = torch.randn(batch, kv_heads, kv_len, head_dim, device=device, dtype=td)
    v = torch.randn(batch, kv_heads, kv_len, head_dim, device=device, dtype=td)
    gqa = heads != kv_heads
    return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)


# ---------------------------------------------------------------------------------------------------- collectors


@dataclass(frozen=True)
class Runtime:
    """Who measured: the table's framework/version/device columns and the folder names."""

    system: str
    engine: str
    version: str
    device: str  # 'cpu' | 'cuda' | 'cuda:i'
    device_name: str
    framework: str


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns)
    for c in columns:
        if c in _INT_COLUMNS:
            df[c] = df[c].astype("int64")
        elif c == "latency":
            df[c] = df[c].astype("float64")
        else:
            df[c] = df[c].astype(str)
    return df


def collect_gemm(rt: Runtime, grid: Grid, dtypes: Sequence[str], timer: Timer) -> pd.DataFrame:
    """GEMM latency (ms) for every (dtype, m, n, k) of the grid; dtypes the device lacks are skipped (logged)."""
    import torch
    rows: list[dict[str, Any]] = []
    for dt in dtypes:
        ok, why = dtype_supported(dt, rt.device)
        if not ok:
            log.warning("gemm %s skipped on %s: %s", dt, rt.device_name, why)
            continue
        t0 = time.perf_counter()
        for n in grid.gemm_n:
            for k in grid.gemm_k:
                for m in grid.gemm_m:
                    lat = _measure(timer, partial(_gemm_fn, dt, m, n, k, rt.device),
                                   f"gemm {dt} m={m} n={n} k={k}", rt.device)
                    if lat is None:
                        continue
                    rows.append(dict(framework=rt.framework, version=rt.version, device=rt.device_name,
                                     op_name="gemm", kernel_source=gemm_kernel_source(dt), gemm_dtype=dt,
                                     m=m, n=n, k=k, latency=lat))
                if rt.device.startswith("cuda"):
                    torch.cuda.empty_cache()
        log.info("gemm %s: %d shapes in %.1f s", dt, len(grid.gemm_m) * len(grid.gemm_n) * len(grid.gemm_k),
                 time.perf_counter() - t0)
    return _frame(rows, GEMM_COLUMNS)


def attention_dtypes(dtypes: Sequence[str]) -> list[str]:
    """The requested dtypes attention runs in (SDPA has no fp8 path; fp8 alone falls back to bfloat16)."""
    out = [d for d in dtypes if d != "fp8"]
    if "fp8" in dtypes:
        log.warning("fp8 attention / fp8 KV cache skipped: torch scaled_dot_product_attention has no fp8 path")
    return out or ["bfloat16"]


def collect_attention(rt: Runtime, grid: Grid, dtypes: Sequence[str], timer: Timer
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(context rows, generation rows): SDPA latency (ms); shapes above the grid's token caps are not measured."""
    ctx: list[dict[str, Any]] = []
    gen: list[dict[str, Any]] = []
    base = dict(framework=rt.framework, version=rt.version, device=rt.device_name, kernel_source="torch.sdpa",
                head_dim=grid.head_dim, beam_width=1, window_size=0)
    for dt in attention_dtypes(dtypes):
        ok, why = dtype_supported(dt, rt.device)
        if not ok:
            log.warning("attention %s skipped on %s: %s", dt, rt.device_name, why)
            continue
        t0, n_ctx, n_gen = time.perf_counter(), len(ctx), len(gen)
        for heads in grid.ctx_heads:
            kvh = max(1, heads // grid.gqa)
            for b in grid.ctx_batch:
                for isl in grid.ctx_isl:
                    if b * isl > grid.ctx_max_tokens:
                        continue
                    lat = _measure(timer, partial(_attn_fn, b, isl, isl, heads, kvh, grid.head_dim, dt, True,
                                                          rt.device),
                                   f"context attention {dt} batch={b} isl={isl} heads={heads}", rt.device)
                    if lat is None:
                        continue
                    ctx.append(dict(base, op_name="context_attention", batch_size=b, isl=isl, num_heads=heads,
                                    num_key_value_heads=kvh, attn_dtype=dt, kv_cache_dtype=dt, step=0,
                                    latency=lat))
        for kvh in grid.gen_kv_heads:
            heads = kvh * grid.gqa
            for b in grid.gen_batch:
                for kv in grid.gen_kv:
                    if b * kv > grid.gen_max_tokens:
                        continue
                    lat = _measure(timer, partial(_attn_fn, b, 1, kv, heads, kvh, grid.head_dim, dt, False,
                                                          rt.device),
                                   f"generation attention {dt} batch={b} kv={kv} kv_heads={kvh}", rt.device)
                    if lat is None:
                        continue
                    gen.append(dict(base, op_name="generation_attention", batch_size=b, isl=1, num_heads=heads,
                                    num_key_value_heads=kvh, attn_dtype=dt, kv_cache_dtype=dt, step=kv - 1,
                                    latency=lat))
        log.info("attention %s: %d context + %d generation shapes in %.1f s", dt, len(ctx) - n_ctx, len(gen) - n_gen,
                 time.perf_counter() - t0)
    return _frame(ctx, ATTN_COLUMNS), _frame(gen, ATTN_COLUMNS)


def _allreduce_worker(rank: int, world: int, backend: str, store: str, sizes: Sequence[int], dtype: str,
                      warmup: int, repeats: int, out: str) -> None:
    """One rank of the all-reduce measurement (module-level for torch.multiprocessing.spawn)."""
    import torch
    import torch.distributed as dist
    cuda = backend == "nccl"
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        dev = f"cuda:{rank}" if cuda else "cpu"
        td = _torch_dtype(dtype)
        res = []
        for size in sizes:
            x = torch.ones(size, device=dev, dtype=td)
            for _ in range(warmup):
                dist.all_reduce(x)
            times = []
            for _ in range(repeats):
                dist.barrier()
                if cuda:
                    torch.cuda.synchronize(dev)
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    s.record()
                    dist.all_reduce(x)
                    e.record()
                    e.synchronize()
                    times.append(s.elapsed_time(e))
                else:
                    t0 = time.perf_counter()
                    dist.all_reduce(x)
                    times.append((time.perf_counter() - t0) * 1e3)
            # the slowest rank's median is the collective's latency
            med = torch.tensor([statistics.median(times)], dtype=torch.float64, device=dev)
            dist.all_reduce(med, op=dist.ReduceOp.MAX)
            res.append((size, float(med.item())))
        if rank == 0:
            pd.DataFrame(res, columns=["message_size", "latency"]).to_csv(out, index=False)
    finally:
        dist.destroy_process_group()


def collect_allreduce(rt: Runtime, grid: Grid, ranks: Sequence[int], dtype: str, warmup: int, repeats: int
                      ) -> pd.DataFrame | None:
    """All-reduce latency (ms) by (ranks, message elements), one process per rank; None with fewer than 2 ranks."""
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    cuda = rt.device.startswith("cuda")
    if cuda:
        have = torch.cuda.device_count()
        backend = "nccl"
        if not dist.is_available() or not dist.is_nccl_available():
            log.warning("no comm table: torch.distributed NCCL is not available in this torch build")
            return None
        todo = [r for r in ranks if 2 <= r <= have]
        if not todo:
            log.warning("no comm table: %d visible GPU(s); an all-reduce needs at least 2 (asked for ranks %s)",
                        have, list(ranks))
            return None
    else:
        backend = "gloo"
        if not dist.is_available() or not dist.is_gloo_available():
            log.warning("no comm table: torch.distributed gloo is not available in this torch build")
            return None
        todo = [r for r in ranks if r >= 2]
        if not todo:
            log.warning("no comm table: one CPU device; pass --ranks 2 (or more) to measure gloo all-reduce "
                        "between processes")
            return None
    rows = []
    for world in todo:
        with tempfile.TemporaryDirectory(prefix="dse_allreduce_") as tmp:
            out = os.path.join(tmp, "result.csv")
            mp.spawn(_allreduce_worker, nprocs=world, join=True,
                     args=(world, backend, os.path.join(tmp, "store"), list(grid.ar_sizes), dtype, warmup,
                           repeats, out))
            res = pd.read_csv(out)
        for size, lat in zip(res["message_size"], res["latency"]):
            rows.append(dict(framework=rt.framework, version=rt.version, device=rt.device_name,
                             op_name="all_reduce", kernel_source=f"torch.distributed.all_reduce_{backend}",
                             allreduce_dtype=dtype, num_gpus=world, message_size=int(size), latency=float(lat),
                             backend=f"torch_{backend}"))
        log.info("all_reduce %s x%d: %d sizes", backend, world, len(res))
    return _frame(rows, ALLREDUCE_COLUMNS)


# ---------------------------------------------------------------------------------------------------- writing


def _meta_yaml(rt: Runtime, tables: dict[str, int], timer: Timer, extra: dict[str, Any]) -> str:
    import torch
    import yaml
    runtime: dict[str, Any] = {"framework": rt.engine, "version": rt.version, "torch": str(torch.__version__),
                               "device": rt.device_name, "system": rt.system}
    if rt.device.startswith("cuda"):
        runtime["cuda"] = str(torch.version.cuda)
        cc = torch.cuda.get_device_capability(rt.device)
        runtime["compute_capability"] = f"{cc[0]}.{cc[1]}"
    meta = {"schema_version": 1, "provenance": "dse objectives.profiles.collect", "runtime": runtime,
            "timing": {"method": ("cuda_events_graph_replay" if rt.device.startswith("cuda") and timer.use_graphs
                                  else "cuda_events" if rt.device.startswith("cuda") else "perf_counter"),
                       "warmup": timer.warmup, "repeats": timer.repeats, "inner_max": timer.inner,
                       "target_ms": timer.target_ms,
                       "statistic": "median", "unit": "ms", **extra},
            "collected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "threads": None if rt.device.startswith("cuda") else int(torch.get_num_threads()),
            "tables": {name: {"status": "complete", "rows": n} for name, n in tables.items()}}
    return yaml.safe_dump(meta, sort_keys=False)


def write_tables(out: Path, rt: Runtime, op: str, tables: dict[str, pd.DataFrame], timer: Timer,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write `tables` ({name: frame}) to out/system/op/engine/version/<name>.parquet plus collection_meta.yaml."""
    d = out / rt.system / op / rt.engine / rt.version
    d.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa
    import pyarrow.parquet as pq
    for name, df in tables.items():
        # arrow types as aiconfigurator-core writes them: string, int64, double (pandas would write large_string)
        schema = pa.schema([(c, pa.int64() if c in _INT_COLUMNS else pa.float64() if c == "latency"
                             else pa.string()) for c in df.columns])
        pq.write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False), d / f"{name}.parquet")
    (d / "collection_meta.yaml").write_text(
        _meta_yaml(rt, {k: len(v) for k, v in tables.items()}, timer, extra or {}))
    return d


def resolve_device(device: str | None) -> str:
    """'cuda' when available (or asked for), else 'cpu'; a CUDA request without CUDA raises ValueError."""
    import torch
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if re.fullmatch(r"cuda(:\d+)?", device):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available in this torch build/machine; use --device "
                             "cpu")
        return device
    raise ValueError(f"--device {device!r}: valid values are 'cpu', 'cuda', 'cuda:<index>'")


def collect(out: str | Path, *, system: str | None = None, engine: str = "torch", version: str | None = None,
            device: str | None = None, quick: bool = False, dtypes: Sequence[str] | str | None = None,
            max_m: int | None = None, ranks: Sequence[int] | None = None, ops: Sequence[str] = ("gemm",
            "attention", "comm"), threads: int | None = None, timer: Timer | None = None) -> dict[str, Path]:
    """Measure and write the tables; returns {table name: parquet path} of what was written.

    `dtypes` default: bf16 and fp8 on CUDA, fp32 and bf16 on CPU; `ranks` default: 2, 4, 8 on CUDA (those the
    visible GPUs allow), none on CPU. `system` defaults to the device's aiconfigurator-core name; `version` to the
    installed torch version. `threads`: CPU intra-op threads (default: torch's own; 1 with `quick` on CPU, where a
    shared machine's thread-pool stalls would otherwise swamp microsecond kernels).
    """
    import torch
    dev = resolve_device(device)
    if not ENGINE_RE.match(engine):
        raise ValueError(f"--engine {engine!r}: use lowercase letters, digits, '.', '_' or '-' (e.g. torch, vllm)")
    bad = [o for o in ops if o not in ("gemm", "attention", "comm")]
    if bad:
        raise ValueError(f"unknown op(s) {bad}; valid: gemm, attention, comm")
    if isinstance(dtypes, str):
        dts = parse_dtypes(dtypes)
    elif dtypes is None:
        dts = ["bfloat16", "fp8"] if dev.startswith("cuda") else ["float32", "bfloat16"]
    else:
        dts = parse_dtypes(",".join(dtypes))
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be a positive count, got {threads}")
    dev_name = torch.cuda.get_device_name(dev) if dev.startswith("cuda") else cpu_name()
    sysname = system if system is not None else system_name(dev_name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", sysname):
        raise ValueError(f"--system {sysname!r}: use letters, digits, '.', '_' or '-' (e.g. h200_sxm)")
    if (why := unusable_system(sysname, dev, dev_name)) is not None:
        log.warning(why)         # said before any measurement, not after minutes of it
    ver = version if version is not None else str(torch.__version__)
    rt = Runtime(system=sysname, engine=engine, version=ver, device=dev, device_name=dev_name, framework=engine)
    grid = make_grid(quick, dev, max_m)
    if timer is None:
        timer = (Timer(dev, warmup=2, repeats=5, inner=3, target_ms=0.2) if quick
                 else Timer(dev, warmup=5, repeats=15, inner=10 if dev.startswith("cuda") else 5))
    old_threads = torch.get_num_threads()
    if dev == "cpu" and (threads is not None or quick):
        torch.set_num_threads(threads or 1)
    try:
        return _collect(Path(out), rt, grid, dts, timer, ops, ranks)
    finally:
        torch.set_num_threads(old_threads)


def _collect(out: Path, rt: Runtime, grid: Grid, dts: list[str], timer: Timer, ops: Sequence[str],
             ranks: Sequence[int] | None) -> dict[str, Path]:
    dev, dev_name, sysname, engine, ver = rt.device, rt.device_name, rt.system, rt.engine, rt.version
    written: dict[str, Path] = {}
    log.info("collecting on %s (%s) -> %s/%s/*/%s/%s", dev_name, dev, out, sysname, engine, ver)
    if "gemm" in ops:
        g = collect_gemm(rt, grid, dts, timer)
        if len(g):
            d = write_tables(out, rt, "gemm", {"gemm_perf": g}, timer)
            written["gemm_perf"] = d / "gemm_perf.parquet"
    if "attention" in ops:
        c, gen = collect_attention(rt, grid, dts, timer)
        if len(c) or len(gen):
            d = write_tables(out, rt, "attention", {"context_attention_perf": c,
                                                    "generation_attention_perf": gen}, timer)
            written["context_attention_perf"] = d / "context_attention_perf.parquet"
            written["generation_attention_perf"] = d / "generation_attention_perf.parquet"
    if "comm" in ops:
        rk = list(ranks) if ranks is not None else ([2, 4, 8] if dev.startswith("cuda") else [])
        ar_dtype = next((d for d in dts if d != "fp8"), "bfloat16")
        a = collect_allreduce(rt, grid, rk, ar_dtype, warmup=timer.warmup, repeats=timer.repeats)
        if a is not None and len(a):
            d = write_tables(out, rt, "comm", {"custom_allreduce_perf": a}, timer,
                             {"comm_timing": "one call per repeat, slowest rank's median"})
            written["custom_allreduce_perf"] = d / "custom_allreduce_perf.parquet"
    return written


def _ints(spec: str, flag: str) -> list[int]:
    try:
        vals = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{flag}: expected comma-separated integers, got {spec!r}") from None
    if any(v < 1 for v in vals):
        raise ValueError(f"{flag}: values must be positive, got {spec!r}")
    return vals


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (2 on bad arguments)."""
    p = argparse.ArgumentParser(prog="python -m objectives.profiles.collect", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output root (tables go to OUT/<system>/<op>/<engine>/<version>/)")
    p.add_argument("--system", default=None, help="system name (default: from the device, e.g. h200_sxm; the "
                   "names a catalog GPU's profile is looked up by: objectives.profiles.profile.SYSTEMS)")
    p.add_argument("--engine", default="torch", help="engine folder name (default: torch)")
    p.add_argument("--version", default=None, help="version folder name (default: the torch version)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:<i> (default: cuda when available)")
    p.add_argument("--quick", action="store_true", help="tiny shapes (seconds; CI)")
    p.add_argument("--dtypes", default=None, help="comma-separated: bf16, fp16, fp32, fp8 (default: bf16,fp8 on "
                   "CUDA, fp32,bf16 on CPU)")
    p.add_argument("--max-m", type=int, default=None, help="largest GEMM m (tokens) measured")
    p.add_argument("--ranks", default=None, help="all-reduce rank counts, e.g. 2,4,8 (default: 2,4,8 on CUDA as "
                   "GPUs allow; none on CPU)")
    p.add_argument("--ops", default="gemm,attention,comm", help="subset of gemm,attention,comm")
    p.add_argument("--threads", type=int, default=None, help="CPU intra-op threads (default: torch's; 1 with "
                   "--quick)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        written = collect(args.out, system=args.system, engine=args.engine, version=args.version,
                          device=args.device, quick=args.quick, dtypes=args.dtypes, max_m=args.max_m,
                          ranks=None if args.ranks is None else _ints(args.ranks, "--ranks"),
                          ops=[o.strip() for o in args.ops.split(",") if o.strip()], threads=args.threads)
    except ValueError as e:
        p.error(str(e))
        return 2
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
