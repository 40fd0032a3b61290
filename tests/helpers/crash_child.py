"""Sweeps run as child processes by test_crash.py: SIGKILLed at random moments and resumed.

``python crash_child.py serve`` imports dse once, then forks one sweep per line read on stdin (``URL TOTAL
OPTIMIZER``): the child prints ``ready PID`` once its study is opened, runs the sweep and prints ``done``; the server
reaps it and prints ``exit CODE`` (`os.waitstatus_to_exitcode`: -9 for a SIGKILL). Each sweep is still a process of
its own, killed and replaced as a fresh interpreter would be, without paying the interpreter's start and dse's
imports (~0.7 s each on 2 cores) eleven times per test."""
import math
import os
import sys
import time
import traceback

import dse


def space() -> dse.Space:
    return dse.Space(
        a=dse.Categorical(["x", "y", "z"]),
        b=dse.Int(1, 200),
        c=dse.Float(0.0, 1.0, step=0.05),
    )


def metrics(a: str, b: int, c: float) -> dict:
    """Deterministic, so a test can recompute every stored metric from the stored parameters."""
    k = {"x": 1.0, "y": 1.5, "z": 0.7}[a]
    return {"f1": k * b * (1 + c), "f2": 100.0 / b + (1 - c) ** 2 + math.sin(b)}


TRIAL_S = 0.012
"""Seconds one evaluation takes at least: the sweep's 600 serial trials need 7.2 s, more than the test's ten kill
windows (at most 0.6 s each) together, so on any machine every one of them lands before the sweep is done."""


def objective(config: dict) -> dict:
    time.sleep(TRIAL_S)
    return metrics(config["a"], config["b"], config["c"])


def sweep(url: str, total: int, optimizer: str) -> None:
    study = dse.create_study("crash", space(), {"f1": "min", "f2": "min"}, storage=url)
    print("ready", os.getpid(), flush=True)
    settings = {"pop_size": 20} if optimizer == "nsga2" else {}
    study.optimize(objective, optimizer=optimizer, max_trials=total, batch_size=20, seed=7, progress=False, **settings)
    print("done", flush=True)


def serve() -> None:
    for line in sys.stdin:
        url, total, optimizer = line.split()
        pid = os.fork()
        if pid == 0:   # the sweep: never returns into the server's loop
            code = 0
            try:
                sweep(url, int(total), optimizer)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("exit", os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    serve()
