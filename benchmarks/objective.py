"""Benchmark of the flagship study's objective per call: wall seconds of one call by batch size, every
configuration one that meets the SLO (so its capacity search runs), against the whole grid's cost per
configuration measured in the same run.

What an optimizer pays per generation (NSGA-II: 20 configurations per call) or per trial (TPE, GP: one), as
against the grid optimizer's one call. The serving model's occupancy and capacity searches test several points per
call when a call holds few configurations (`objectives.serving.bisection`).

    .venv/bin/python benchmarks/objective.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _timing import machine_line  # noqa: E402

import dse  # noqa: E402

BATCHES = (1, 5, 20, 100, 1000)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="calls per batch size (different configurations)")
    args = ap.parse_args(argv)
    print(machine_line())
    warnings.simplefilter("ignore")
    st = dse.load_study_file(ROOT / "studies/llm_serving.py")
    evaluate = getattr(st.evaluate, "screen", st.evaluate)
    grid = st.space.grid()
    t = time.perf_counter()
    metrics = evaluate(grid)
    grid_s = time.perf_counter() - t
    good = grid[metrics["capacity_req_s"].notna().to_numpy()]
    print(f"studies/llm_serving.py screening objective: grid of {len(grid):,} configurations in {grid_s:.2f} s "
          f"({grid_s / len(grid) * 1e6:.0f} us per configuration; {len(good):,} meet the SLO and get a capacity "
          f"search)")
    print("| configurations per call | s per call (median) | ms per configuration | x the grid's per configuration |")
    print("|---|---|---|---|")
    for n in BATCHES:
        runs = []
        for r in range(args.repeat):
            df = good.sample(n, random_state=r)
            t = time.perf_counter()
            evaluate(df)
            runs.append(time.perf_counter() - t)
        s = statistics.median(runs)
        print(f"| {n:,} | {s:.3f} | {s / n * 1e3:.2f} | {s / n / (grid_s / len(grid)):.0f} |")


if __name__ == "__main__":
    main()
