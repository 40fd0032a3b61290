"""A grid study file that two `dse worker` processes share in test_workers.py (3,300 points, ~1 ms each)."""
import os
import time

import dse

study = dse.StudySpec(
    name="shared-grid",
    space=dse.Space(a=dse.Categorical(["x", "y", "z"]), b=dse.Int(1, 100), c=dse.Float(0.0, 1.0, step=0.1)),
    objectives={"f1": "min", "f2": "min"},
    evaluate=lambda config: (time.sleep(0.001), {
        "f1": {"x": 1.0, "y": 1.5, "z": 0.7}[config["a"]] * config["b"] * (1 + config["c"]),
        "f2": 100.0 / config["b"] + (1 - config["c"]) ** 2, "pid": os.getpid()})[1],
    optimizer="grid",
    n_trials=3300,
    report=False,
)
