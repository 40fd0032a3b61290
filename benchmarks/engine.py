"""Engine benchmark: persisted trials/s, NSGA-II overhead per trial, and a 1e6-point grid end to end.

Run: python benchmarks/engine.py            (about a minute on 2 cores)
     python benchmarks/engine.py --profile 40   (where an nsga2 run spends its time, cProfile)
Targets: see docs/engine.md (persisted trials/s with the defaults and with batch_size=1000, NSGA-II overhead per
trial, a 1e6-point grid end to end with its peak memory).
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import dse


def cheap_space() -> dse.Space:
    return dse.Space(
        a=dse.Categorical(["p", "q", "r", "s"]),
        b=dse.Int(1, 100),
        c=dse.Float(0.0, 1.0, step=0.01),
        d=dse.Categorical([1, 2, 4, 8, 16]),
        constraints=["b * d <= 1200"],
    )


@dse.vectorized(name="cheap", version="1")
def cheap(df: pd.DataFrame) -> pd.DataFrame:
    b, c, d = df["b"].to_numpy(float), df["c"].to_numpy(float), df["d"].to_numpy(float)
    k = df["a"].map({"p": 1.0, "q": 1.1, "r": 0.9, "s": 1.3}).to_numpy(float)
    return pd.DataFrame({"f1": k * b * (1 + c) / d, "f2": 100.0 / (b * d) + (1 - c) ** 2, "aux": b * d})


def bench_persist(tmp: Path, n: int, batch_size: int | None = 1000) -> float:
    """Persisted trials/s of random search on a cheap vectorized objective (``batch_size=None``: the defaults, as
    a user calls it)."""
    name = f"persist-{batch_size}"
    study = dse.create_study(name, cheap_space(), {"f1": "min", "f2": "min"}, storage=f"sqlite:///{tmp/(name + '.db')}")
    t0 = time.perf_counter()
    study.optimize(cheap, optimizer="random", n_trials=n, batch_size=batch_size, seed=0, progress=False)
    dt = time.perf_counter() - t0
    assert len(study.trials) == n
    return n / dt


def bench_optuna(tmp: Path, n: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.create_study(storage=f"sqlite:///{tmp/'optuna.db'}", directions=["minimize", "minimize"],
                            sampler=optuna.samplers.RandomSampler(seed=0))
    t0 = time.perf_counter()
    for _ in range(n):
        t = s.ask()
        row = pd.DataFrame([{"a": t.suggest_categorical("a", ["p", "q", "r", "s"]), "b": t.suggest_int("b", 1, 100),
                             "c": t.suggest_float("c", 0.0, 1.0, step=0.01), "d": t.suggest_categorical("d", [1, 2, 4, 8, 16])}])
        m = cheap(row).iloc[0]
        t.set_user_attr("aux", float(m["aux"]))   # dse stores every metric, not only the objectives: so does this
        s.tell(t, [m["f1"], m["f2"]])
    return n / (time.perf_counter() - t0)


def bench_nsga2(tmp: Path, n: int, run: int = 0, **settings) -> tuple[float, float, float]:
    """(engine overhead per trial: wall time minus the objective's own time, divided by trials, ms; trials/s; CPU
    time per trial, objective included, ms: the figure a shared machine does not inflate). A fresh study each run,
    so the one-time cost of building the optimizer's grid projection is included."""
    spent = [0.0]

    @dse.vectorized(name="cheap-timed")
    def timed(df):
        t = time.perf_counter()
        out = cheap(df)
        spent[0] += time.perf_counter() - t
        return out

    name = f"nsga-{run}" + "".join(f"-{k}{v}" for k, v in settings.items())
    study = dse.create_study(name, cheap_space(), {"f1": "min", "f2": "min"}, storage=f"sqlite:///{tmp/(name + '.db')}")
    t0, c0 = time.perf_counter(), time.process_time()
    study.optimize(timed, optimizer="nsga2", n_trials=n, seed=0, progress=False, **settings)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return (wall - spent[0]) / n * 1e3, n / wall, cpu / n * 1e3


def bench_grid(tmp: Path) -> tuple[float, float, int, int]:
    """A 1e6-point grid end to end: every point stored as a trial, then the front read back; (wall s, CPU s of
    this process, points, front size)."""
    space = dse.Space(
        a=dse.Categorical(["p", "q", "r", "s"]),
        b=dse.Int(1, 250),
        c=dse.Float(0.0, 1.0, step=1 / 999),
    )
    n = space.size
    study = dse.create_study("grid", space, {"f1": "min", "f2": "min"}, storage=f"sqlite:///{tmp/'grid.db'}")

    @dse.vectorized(name="cheap-grid")
    def f(df):
        b, c = df["b"].to_numpy(float), df["c"].to_numpy(float)
        k = np.where(df["a"].to_numpy() == "p", 1.0, 1.2)
        return pd.DataFrame({"f1": k * b * (1 + c), "f2": 100.0 / b + (1 - c) ** 2})

    t0, c0 = time.perf_counter(), time.process_time()
    study.optimize(f, optimizer="grid", progress=False)
    front = len(study.pareto())
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert study.summary()["n_trials"] == n, "every grid point is a trial"
    return dt, cpu, int(n), front


def grid_in_child() -> None:
    """Run ``bench_grid`` in this (fresh) process and print its figures with the process's peak RSS and the CPU
    time it took (user + system: on a shared machine the wall time also counts other people's work)."""
    with tempfile.TemporaryDirectory() as d:
        dt, cpu, n, front = bench_grid(Path(d))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux
    print(f"grid over {n:,} points end to end (every point a trial, front read back): {dt:.2f} s wall, "
          f"{cpu:.2f} s CPU, front {front}, peak RSS {peak_mib:,.0f} MiB  [targets <= 5 s, <= 1 GiB]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20_000)
    ap.add_argument("--optuna-trials", type=int, default=150)
    ap.add_argument("--nsga-trials", type=int, default=5_000)
    ap.add_argument("--repeats", type=int, default=3, help="nsga2 runs per setting (the median is reported: the "
                    "machine is shared and single runs vary by +-30 %%)")
    ap.add_argument("--profile", type=int, metavar="N", default=0,
                    help="only profile one nsga2 run (cProfile) and print its N costliest functions (cumulative)")
    ap.add_argument("--grid-only", action="store_true", help="only the 1e6-point grid (in this process)")
    args = ap.parse_args()
    if args.grid_only:
        grid_in_child()
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.profile:
            import cProfile
            import pstats

            bench_nsga2(tmp, 200)   # imports and first-use costs out of the profile
            prof = cProfile.Profile()
            prof.runcall(bench_nsga2, tmp, args.nsga_trials, run=1)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(args.profile)
            return
        import dse.optimizers  # noqa: F401  (imports are not what is measured)
        import dse.study  # noqa: F401
        defaults = bench_persist(tmp, args.trials, batch_size=None)
        ours = bench_persist(tmp, args.trials)
        theirs = bench_optuna(tmp, args.optuna_trials)
        print(f"persisted trials/s, SQLite, cheap vectorized objective, random search: dse with the defaults "
              f"{defaults:,.0f}/s, with batch_size=1000 {ours:,.0f}/s  Optuna RDB {theirs:,.1f}/s "
              f"({1e3 / theirs:.0f} ms/trial)  ratio {ours / theirs:,.0f}x  [targets >= 20,000/s with the defaults]")
        for settings, label in (({}, "default population (20)"), ({"pop_size": 100}, "pop_size=100")):
            runs = [bench_nsga2(tmp, args.nsga_trials, run=r, **settings) for r in range(args.repeats)]
            over = sorted(o for o, _, _ in runs)
            rate = float(np.median([r for _, r, _ in runs]))
            cpu = float(np.median([c for _, _, c in runs]))
            print(f"nsga2 engine overhead per trial, {label}: {np.median(over):.3f} ms, median of {len(runs)} runs "
                  f"({over[0]:.3f}-{over[-1]:.3f}; {rate:,.0f} trials/s end to end; CPU {cpu:.3f} ms per trial, "
                  "objective included)  [target <= 0.5 ms]")
    # the grid in a fresh process, so that its peak RSS is its own
    subprocess.run([sys.executable, __file__, "--grid-only"], check=True)


if __name__ == "__main__":
    main()
