"""Storage throughput: dse's SQLStorage against Optuna's RDBStorage, both on a SQLite file, measured in one run.

    .venv/bin/python benchmarks/storage.py            # ~1 minute on a busy 2-core machine
    .venv/bin/python benchmarks/storage.py --url postgresql://user:pw@127.0.0.1:5432/db   # dse part on another URL

Prints persisted trials/s for dse (reserve_trials + finish_trials, one transaction each per batch; and the
add_trials fast path), for Optuna (study.ask(fixed_distributions) + study.tell on optuna.storages.RDBStorage),
the ratio, and load_trials time for 100,000 trials. Targets (issue 2): >= 5,000 trials/s and >= 500x Optuna;
load_trials of 100k trials in about 1 s. Every trial carries the same 6 parameters and 4 metrics in both stores.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dse.storage import open_storage  # noqa: E402

GPUS = ["H100-SXM-80GB", "H200-SXM-141GB", "A100-SXM-80GB", "L40S"]
DTYPES = ["bf16", "fp8", "int4"]


def make_params(rng: np.random.Generator, n: int) -> list[dict]:
    """n configurations of a 6-parameter LLM-serving-like space (vectorized draw, then dicts)."""
    gpu = rng.integers(0, len(GPUS), n)
    tp = 2 ** rng.integers(0, 4, n)
    dt = rng.integers(0, len(DTYPES), n)
    bs = rng.integers(1, 1025, n)
    lr = rng.random(n)
    chunk = rng.random(n) < 0.5
    return [
        {"gpu": GPUS[g], "tp": int(t), "weight_dtype": DTYPES[d], "batch_size": int(b), "frac": float(f),
         "chunked": bool(c)}
        for g, t, d, b, f, c in zip(gpu, tp, dt, bs, lr, chunk)
    ]


def make_metrics(params: list[dict]) -> list[dict]:
    return [
        {"tpot_ms": 0.01 * p["batch_size"] / p["tp"], "usd_per_mtok": 0.3 + p["frac"], "ttft_ms": 50.0 * p["frac"],
         "fits": 1.0}
        for p in params
    ]


def bench_dse(url: str, n: int, batch: int, rng: np.random.Generator) -> tuple[float, float]:
    """(trials/s via reserve+finish, trials/s via add_trials) for n trials in batches."""
    st = open_storage(url)
    name = f"bench-{time.time_ns()}"
    sid = st.create_study(name, {"bench": True})
    batches = [make_params(rng, batch) for _ in range(n // batch)]
    metrics = [make_metrics(b) for b in batches]
    t0 = time.perf_counter()
    for params, mets in zip(batches, metrics):
        numbers = st.reserve_trials(sid, params, "bench:0:x")
        now = time.time()
        st.finish_trials(sid, [
            {"number": k, "state": "complete", "metrics": m, "feasible": True, "error": None, "finished_at": now,
             "duration_s": 1e-5}
            for k, m in zip(numbers, mets)
        ])
    reserve_finish = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for params, mets in zip(batches, metrics):
        now = time.time()
        st.add_trials(sid, [
            {"params": p, "state": "complete", "metrics": m, "feasible": True, "finished_at": now, "duration_s": 1e-5}
            for p, m in zip(params, mets)
        ], "bench:0:x")
    add = n / (time.perf_counter() - t0)
    assert st.count_trials(sid, ["complete"]) == 2 * (n // batch) * batch
    st.delete_study(name)
    st.close()
    return reserve_finish, add


def bench_optuna(path: Path, n: int, rng: np.random.Generator) -> tuple[float, float]:
    """Optuna's RDBStorage on a SQLite file: (trials/s written with study.ask/tell + 2 extra metrics as user attrs,
    trials/s read back with study.get_trials)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    study = optuna.create_study(storage=storage, study_name="bench", directions=["minimize", "minimize"])
    dists = {
        "gpu": CategoricalDistribution(GPUS), "tp": IntDistribution(1, 8), "weight_dtype": CategoricalDistribution(DTYPES),
        "batch_size": IntDistribution(1, 1024), "frac": FloatDistribution(0.0, 1.0),
        "chunked": CategoricalDistribution([False, True]),
    }
    params = make_params(rng, n)
    mets = make_metrics(params)
    t0 = time.perf_counter()
    for m in mets:
        trial = study.ask(dists)
        trial.set_user_attr("ttft_ms", m["ttft_ms"])
        trial.set_user_attr("fits", m["fits"])
        study.tell(trial, [m["tpot_ms"], m["usd_per_mtok"]])
    rate = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    got = study.get_trials(deepcopy=False)
    read_rate = n / (time.perf_counter() - t0)
    assert len(got) == n
    return rate, read_rate


def bench_load(url: str, n: int, rng: np.random.Generator, repeats: int = 3) -> tuple[float, float]:
    """(best load_trials seconds for n trials, seconds to load the last 1% with min_number)."""
    st = open_storage(url)
    name = f"load-{time.time_ns()}"
    sid = st.create_study(name, {})
    for start in range(0, n, 5000):
        params = make_params(rng, min(5000, n - start))
        st.add_trials(sid, [
            {"params": p, "state": "complete", "metrics": m, "feasible": True, "finished_at": 1.0, "duration_s": 0.0}
            for p, m in zip(params, make_metrics(params))
        ], "bench:0:x")
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        df = st.load_trials(sid)
        best = min(best, time.perf_counter() - t0)
        assert len(df) == n
    t0 = time.perf_counter()
    tail = st.load_trials(sid, min_number=n - n // 100)
    tail_s = time.perf_counter() - t0
    assert len(tail) == n // 100
    st.delete_study(name)
    st.close()
    return best, tail_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20_000, help="dse trials per path (default 20000)")
    ap.add_argument("--batch", type=int, default=500, help="trials per transaction (default 500)")
    ap.add_argument("--optuna-trials", type=int, default=100, help="Optuna trials (default 100)")
    ap.add_argument("--load-trials", type=int, default=100_000, help="trials for load_trials (default 100000)")
    ap.add_argument("--url", default=None, help="storage URL for the dse part (default: a temporary SQLite file)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="dse-bench-") as tmp:
        url = args.url or f"sqlite:///{tmp}/dse.db"
        shown = open_storage(url)
        print(f"dse storage: {shown.url}   Optuna: optuna.storages.RDBStorage on sqlite:///{tmp}/optuna.db")
        shown.close()
        dse_rate, add_rate = bench_dse(url, args.trials, args.batch, rng)
        print(f"dse reserve_trials+finish_trials : {dse_rate:12,.0f} trials/s  ({args.trials} trials, "
              f"batches of {args.batch})")
        print(f"dse add_trials                   : {add_rate:12,.0f} trials/s")
        opt_rate, opt_read = bench_optuna(Path(tmp) / "optuna.db", args.optuna_trials, rng)
        print(f"Optuna RDBStorage ask+tell       : {opt_rate:12,.1f} trials/s  ({args.optuna_trials} trials, "
              f"{1000 / opt_rate:.1f} ms/trial)")
        ratio = dse_rate / opt_rate
        print(f"ratio dse (reserve+finish) / Optuna: {ratio:,.0f}x")
        load_s, tail_s = bench_load(url, args.load_trials, rng)
        print(f"dse load_trials, {args.load_trials:,} trials  : {load_s:.3f} s  "
              f"({args.load_trials / load_s:,.0f} trials/s); last 1% via min_number: {tail_s * 1000:.1f} ms")
        print(f"Optuna study.get_trials          : {opt_read:12,.0f} trials/s  ({args.optuna_trials} trials); "
              f"ratio dse load_trials / Optuna: {args.load_trials / load_s / opt_read:,.1f}x")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          "(absolute figures scale with load; the ratios are measured side by side)")
    sqlite = args.url is None or args.url.startswith("sqlite")
    checks = [
        ("persisted trials/s >= 5,000", dse_rate >= 5_000),
        *([("ratio to Optuna RDBStorage >= 500x (both on SQLite)", ratio >= 500)] if sqlite else []),
        (f"load_trials of {args.load_trials:,} trials in ~1 s per 100k (<= 1.5 s per 100k)",
         load_s <= 1.5 * args.load_trials / 100_000),
    ]
    for what, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
