"""Timing helper shared by the one-command benchmarks (run as scripts: `python benchmarks/<name>.py`)."""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def machine_line() -> str:
    """The first line every benchmark prints: cores, load average, OMP_NUM_THREADS (the machines are shared)."""
    return (f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


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
