"""Timing helpers shared by the one-command benchmarks (run as scripts: `python benchmarks/<name>.py`)."""
from __future__ import annotations

import argparse
import importlib
import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def machine_line() -> str:
    """The first line every benchmark prints: cores, load average, OMP_NUM_THREADS (the machines are shared)."""
    return (f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


def sweep_args() -> argparse.Namespace:
    """The command line of a configurations/s benchmark over broadcast arrays: ``--n`` configurations a call
    (default 1,000,000) and ``--repeat`` timed calls (default 5)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    return ap.parse_args()


def rates(fn: Callable[[], Any], n: int, repeat: int) -> tuple[float, float]:
    """(configs/s of the first call, median configs/s of `repeat` further calls) of `fn` returning n rows."""
    t = time.perf_counter()
    out = fn()
    first = n / (time.perf_counter() - t)
    assert len(out) == n
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(n / (time.perf_counter() - t))
    return first, statistics.median(runs)


def peer_rate(function: str, call: Callable[[Callable[..., Any], int], Any], calls: int) -> float | None:
    """Calls/s of the analytical peer llm-analysis's ``llm_analysis.analysis.<function>``, called ``calls`` times as
    ``call(fn, i)`` (the i-th call's configuration); None where llm-analysis is not importable (it is no dependency
    of the project). Its bundled model configs only, never the network (HF_HUB_OFFLINE=1)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        fn = getattr(importlib.import_module("llm_analysis.analysis"), function)
    except Exception:  # noqa: BLE001 - not installed
        return None
    t = time.perf_counter()
    for i in range(calls):
        call(fn, i)
    return calls / (time.perf_counter() - t)
