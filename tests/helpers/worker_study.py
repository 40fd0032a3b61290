"""The study file several `dse worker` processes share in test_workers.py."""
import os
import time

import dse

space = dse.Space(
    a=dse.Categorical(["x", "y", "z"]),
    b=dse.Int(1, 300),
    c=dse.Float(0.0, 1.0, step=0.02),
)


def evaluate(config: dict) -> dict:
    time.sleep(0.001)
    k = {"x": 1.0, "y": 1.5, "z": 0.7}[config["a"]]
    return {"f1": k * config["b"] * (1 + config["c"]), "f2": 100.0 / config["b"] + (1 - config["c"]) ** 2,
            "pid": os.getpid()}


study = dse.StudySpec(
    name="shared",
    space=space,
    objectives={"f1": "min", "f2": "min"},
    evaluate=evaluate,
    optimizer=os.environ.get("DSE_TEST_OPTIMIZER", "nsga2"),
    optimizer_settings={"pop_size": 20} if os.environ.get("DSE_TEST_OPTIMIZER", "nsga2") == "nsga2" else {},
    batch_size=20,
    n_trials=2000,
    report=False,
)
