"""Measured kernel profiles per (GPU, serving engine, engine version): GEMM, attention and collective latencies.

    from objectives import profiles
    profiles.available("H200-SXM-141GB")          # {"vllm": ["0.24.0"], "sglang": [...], "trtllm": [...]}
    p = profiles.load("H200-SXM-141GB", "vllm")    # newest version; None for a GPU without a profile
    p.table("gemm.fp8")(m, n, k)                    # latency (ms), vectorized, log-log interpolation

Modules: grid (the `Table` interpolator), profile (`KernelProfile`, files, lookup), build (raw tables ->
compact profile), cache (the built table groups on disk, ``$DSE_CACHE_DIR`` or the user's cache folder), collect
(the PyTorch collector writing raw tables from the user's own GPU).
"""
from .grid import Table
from .profile import (
                      DATA_DIR,
                      ENGINE_IMAGES,
                      ENGINE_NAMES,
                      ENGINE_VENDORS,
                      GPU_OF_SYSTEM,
                      IDLE_AHEAD_ENGINES,
                      JIT_PREFILL_KINDS,
                      NO_OVERLAP_LINEAR_KINDS,
                      NO_OVERLAP_ROLES,
                      OVERLAP_ENGINES,
                      OVERLAP_SINCE,
                      PREFILL_ALONE_ENGINES,
                      RANK_API_ENGINES,
                      RELEASE_DATES,
                      RELEASE_SEP,
                      SPEC_OVERLAP_SINCE,
                      SYSTEMS,
                      TABLE_BUILDS,
                      KernelProfile,
                      api_server_ranks,
                      available,
                      build_date,
                      dated_tables,
                      engine_key,
                      engine_label,
                      engine_release,
                      forms_idle_ahead,
                      is_build_label,
                      is_release,
                      jit_prefill_rows,
                      load,
                      overlap_mask,
                      overlap_rows,
                      overlaps,
                      overlaps_in_role,
                      per_engine,
                      prefill_alone_mask,
                      read,
                      release_date,
                      release_key,
                      release_since,
                      resolve_engine,
                      runs_on,
                      runs_prefill_alone,
                      system_of,
)

__all__ = ["Table", "KernelProfile", "available", "engine_key", "engine_label", "load", "read", "resolve_engine", "runs_on", "system_of", "SYSTEMS",
           "ENGINE_NAMES", "ENGINE_VENDORS", "GPU_OF_SYSTEM", "DATA_DIR", "PREFILL_ALONE_ENGINES", "prefill_alone_mask",
           "runs_prefill_alone", "OVERLAP_ENGINES", "OVERLAP_SINCE", "NO_OVERLAP_ROLES", "overlap_mask", "overlaps",
           "overlaps_in_role", "RANK_API_ENGINES", "api_server_ranks", "per_engine",
           "NO_OVERLAP_LINEAR_KINDS", "overlap_rows", "JIT_PREFILL_KINDS", "jit_prefill_rows", "SPEC_OVERLAP_SINCE",
           "RELEASE_SEP", "engine_release", "release_since", "release_key", "is_release", "ENGINE_IMAGES",
           "IDLE_AHEAD_ENGINES", "forms_idle_ahead",
           "TABLE_BUILDS", "build_date", "dated_tables", "is_build_label", "RELEASE_DATES", "release_date"]
