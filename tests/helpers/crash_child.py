"""A sweep run as a child process by test_crash.py: it is SIGKILLed at random moments and resumed."""
import math
import sys
import time

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


if __name__ == "__main__":
    url, total, optimizer = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    study = dse.create_study("crash", space(), {"f1": "min", "f2": "min"}, storage=url)
    print("ready", flush=True)
    settings = {"pop_size": 20} if optimizer == "nsga2" else {}
    study.optimize(objective, optimizer=optimizer, max_trials=total, batch_size=20, seed=7, progress=False, **settings)
    print("done", flush=True)
