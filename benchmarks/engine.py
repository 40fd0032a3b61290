"""Engine benchmark: persisted trials/s, NSGA-II overhead per trial, and a 1e6-point grid end to end.

Run: python benchmarks/engine.py            (about a minute on 2 cores)
     python benchmarks/engine.py --profile 40   (where an nsga2 run spends its time, cProfile)
Targets (issue 2): >= 5,000 persisted trials/s on SQLite and >= 500x Optuna's RDB storage in the same run;
<= 0.5 ms engine overhead per trial with nsga2 and a vectorized objective; grid over 1e6 points <= 5 s.
"""
from __future__ import annotations

import argparse
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


def bench_persist(tmp: Path, n: int) -> float:
    study = dse.create_study("persist", cheap_space(), {"f1": "min", "f2": "min"}, storage=f"sqlite:///{tmp/'persist.db'}")
    t0 = time.perf_counter()
    study.optimize(cheap, optimizer="random", n_trials=n, batch_size=1000, seed=0, progress=False)
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


def bench_nsga2(tmp: Path, n: int, run: int = 0, **settings) -> tuple[float, float]:
    """Engine overhead per trial: wall time minus the objective's own time, divided by trials (a fresh study
    each run, so the one-time cost of building the optimizer's grid projection is included)."""
    spent = [0.0]

    @dse.vectorized(name="cheap-timed")
    def timed(df):
        t = time.perf_counter()
        out = cheap(df)
        spent[0] += time.perf_counter() - t
        return out

    name = f"nsga-{run}" + "".join(f"-{k}{v}" for k, v in settings.items())
    study = dse.create_study(name, cheap_space(), {"f1": "min", "f2": "min"}, storage=f"sqlite:///{tmp/(name + '.db')}")
    t0 = time.perf_counter()
    study.optimize(timed, optimizer="nsga2", n_trials=n, seed=0, progress=False, **settings)
    wall = time.perf_counter() - t0
    return (wall - spent[0]) / n * 1e3, n / wall


def bench_grid(tmp: Path) -> tuple[float, int, int]:
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

    t0 = time.perf_counter()
    study.optimize(f, optimizer="grid", progress=False)
    dt = time.perf_counter() - t0
    files = list(Path(study.summary()["grid"]["path"]).glob("*.parquet"))
    assert files, "no Parquet written"
    return dt, n, len(study.pareto())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20_000)
    ap.add_argument("--optuna-trials", type=int, default=150)
    ap.add_argument("--nsga-trials", type=int, default=5_000)
    ap.add_argument("--repeats", type=int, default=3, help="nsga2 runs per setting (the median is reported: the "
                    "machine is shared and single runs vary by +-30 %%)")
    ap.add_argument("--profile", type=int, metavar="N", default=0,
                    help="only profile one nsga2 run (cProfile) and print its N costliest functions (cumulative)")
    args = ap.parse_args()
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
        ours = bench_persist(tmp, args.trials)
        theirs = bench_optuna(tmp, args.optuna_trials)
        print(f"persisted trials/s, SQLite, cheap vectorized objective: dse {ours:,.0f}/s  "
              f"Optuna RDB {theirs:,.1f}/s ({1e3 / theirs:.0f} ms/trial)  ratio {ours / theirs:,.0f}x  "
              f"[targets >= 5,000/s and >= 500x]")
        for settings, label in (({}, "default population (20)"), ({"pop_size": 100}, "pop_size=100")):
            runs = [bench_nsga2(tmp, args.nsga_trials, run=r, **settings) for r in range(args.repeats)]
            over = sorted(o for o, _ in runs)
            rate = float(np.median([r for _, r in runs]))
            print(f"nsga2 engine overhead per trial, {label}: {np.median(over):.3f} ms, median of {len(runs)} runs "
                  f"({over[0]:.3f}-{over[-1]:.3f}; {rate:,.0f} trials/s end to end)  [target <= 0.5 ms]")
        dt, n, front = bench_grid(tmp)
        print(f"grid over {n:,} points end to end (front stored, Parquet written): {dt:.2f} s, front {front}  [target <= 5 s]")


if __name__ == "__main__":
    main()
