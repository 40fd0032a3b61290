"""Benchmark of the flagship study end to end: README's first command (``dse run studies/llm_serving.py``: the
grid screened analytically, its front simulated, the front printed, the HTML report written) in a fresh process,
wall and CPU seconds, and where they go.

Parts: importing dse and the cost models; loading the study file (space, objective); the analytical screen of the
grid (`ServingModel.evaluate` at the workload's rate, then `ServingModel.capacity`'s bisection over the rate for
the configurations meeting the SLO; the first call also builds the GPUs' kernel profiles); the confirmation (the
front's analytical pass again, then one simulation per front configuration, in series); the rest of
``Study.optimize`` (storage writes, the front); the front table; the report. The study goes to a temporary SQLite
file and its report to a temporary folder (the study's own files in studies/ are left alone). The machines are
shared: compare CPU seconds, and runs of one session only.

Then the fidelity of the screen (issue 14's front gap): per metric the SLO bounds (p99 TTFT and TPOT for the
flagship), then the mean TTFT and TPOT, the median and max |analytical - simulated| / simulated over the front's
simulated points, from the values the study stores (`gap_table`, `ConfirmedLLMServing.gaps`).

    .venv/bin/python benchmarks/flagship.py
"""
from __future__ import annotations

import time

T0_WALL, T0_CPU = time.perf_counter(), time.process_time()

import argparse  # noqa: E402
import functools  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _timing import machine_line  # noqa: E402

import dse  # noqa: E402
import dse.fidelity  # noqa: E402
import dse.report  # noqa: E402
import dse.spec  # noqa: E402
import dse.study  # noqa: E402
import objectives.llm_serving  # noqa: E402
import objectives.serving.analytical  # noqa: E402

IMPORT_WALL, IMPORT_CPU = time.perf_counter() - T0_WALL, time.process_time() - T0_CPU


class Parts:
    """Wall and CPU seconds and calls of the functions `wrap` times (outermost calls only)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._depth: dict[str, int] = {}

    def wrap(self, owner: Any, name: str, label: str) -> Callable[[], None]:
        """Time ``owner.name`` under `label` until the returned undo is called."""
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            depth = self._depth.get(label, 0)
            self._depth[label] = depth + 1
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth[label] = depth
                if depth == 0:
                    self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - w
                    self.cpu[label] = self.cpu.get(label, 0.0) + time.process_time() - c
                    self.calls[label] = self.calls.get(label, 0) + 1

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, fn)


def gap_table(gaps: Any) -> list[str]:
    """`ConfirmedLLMServing.gaps`' table (metric index; n, median, max as fractions) as Markdown lines."""
    lines = ["| metric | front points | median gap % | max gap % |", "|---|---|---|---|"]
    lines += [f"| {m} | {int(g['n'])} | {100 * g['median']:.1f} | {100 * g['max']:.1f} |" for m, g in gaps.iterrows()]
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(ROOT / "studies/llm_serving.py"), help="study file (default: the flagship)")
    args = ap.parse_args(argv)
    print(machine_line())
    warnings.simplefilter("ignore")
    parts = Parts()
    undo = [parts.wrap(dse.spec, "load_study_file", "study file"),
            parts.wrap(dse.study.Study, "optimize", "optimize"),
            parts.wrap(dse.fidelity.Confirming, "__call__", "objective"),
            parts.wrap(dse.fidelity, "confirm", "confirm"),
            parts.wrap(objectives.serving.analytical.ServingModel, "capacity", "capacity"),
            parts.wrap(objectives.llm_serving.LLMServingObjective, "_simulate_one", "simulations"),
            parts.wrap(dse.spec, "front_table", "front table"),
            parts.wrap(dse.report, "write", "report")]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec = dse.spec.load_study_file(args.study)
            study = spec.run(f"sqlite:///{tmp}/{spec.name}.db", progress=False)
            dse.spec.front_table(study, spec.show, limit=40)
            if spec.report and study.summary()["front_size"]:
                dse.report.write(study.view(), Path(tmp) / f"{spec.name}.html",
                                 sections=dse.report.objective_sections(spec.evaluate, study))
            s = study.summary()
            gaps = spec.evaluate.gaps(study.pareto()) if hasattr(spec.evaluate, "gaps") else None
    finally:
        for u in undo:
            u()
    wall, cpu = time.perf_counter() - T0_WALL, time.process_time() - T0_CPU
    sims = parts.calls.get("simulations", 0)
    print(f"{Path(args.study).name}: {s['n_complete']:,} configurations, {s['n_feasible']:,} feasible, front of "
          f"{s['front_size']}; {sims} simulations")

    def part(label: str, minus: tuple[str, ...] = ()) -> tuple[float, float]:
        return (parts.wall.get(label, 0.0) - sum(parts.wall.get(m, 0.0) for m in minus),
                parts.cpu.get(label, 0.0) - sum(parts.cpu.get(m, 0.0) for m in minus))

    rows = [("imports (dse, objectives)", (IMPORT_WALL, IMPORT_CPU)),
            ("study file (space, objective)", part("study file")),
            ("analytical screen of the grid (first call builds the kernel profiles)", part("objective", ("confirm",))),
            ("confirmation: the front re-priced, then simulated", part("confirm")),
            (f"  of which {sims} simulations, in series", part("simulations")),
            ("  capacity searches (screen and front)", part("capacity")),
            ("rest of Study.optimize (storage, front)", part("optimize", ("objective",))),
            ("front table", part("front table")),
            ("report (HTML)", part("report")),
            ("end to end", (wall, cpu))]
    print("| part | wall s | CPU s |")
    print("|---|---|---|")
    for label, (ws, cs) in rows:
        print(f"| {label} | {ws:.2f} | {cs:.2f} |")
    if gaps is not None:
        print("analytical vs simulated on the front (|analytical - simulated| / simulated):")
        print("\n".join(gap_table(gaps)))


if __name__ == "__main__":
    main()
