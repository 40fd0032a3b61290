"""dse: design-space exploration engine (spaces, studies, optimizers, storage, Pareto analysis).

The engine knows nothing about GPUs or LLMs: it serves any Python objective over any space.

    import dse
    space = dse.Space(x=dse.Float(0, 1), n=dse.Int(1, 64, log=True), constraints=["x * n <= 32"])
    study = dse.create_study("demo", space=space, objectives={"cost": "min", "speed": "max"})
    study.optimize(evaluate, optimizer="nsga2", n_trials=2000, n_jobs=-1, seed=0)
    study.pareto()
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    DSEError,
    ExpressionError,
    ObjectiveError,
    OptimizerError,
    SpaceError,
    StorageError,
    StudyError,
)
from .evaluation import objective_info, vectorized  # noqa: E402
from .objective import ObjectiveSpec  # noqa: E402
from .space import Categorical, Float, Int, Space  # noqa: E402

# Study machinery pulls in SQLAlchemy, pymoo and Optuna: load it on first use.
_LAZY = {
    "Study": "study", "create_study": "study", "load_study": "study", "list_studies": "study",
    "delete_study": "study", "StudySpec": "spec", "load_study_file": "spec",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dse' has no attribute {name!r}")


__all__ = [
    "Categorical", "DSEError", "ExpressionError", "Float", "Int", "ObjectiveError", "ObjectiveSpec",
    "OptimizerError", "Space", "SpaceError", "StorageError", "Study", "StudyError", "StudySpec", "__version__",
    "create_study", "delete_study", "list_studies", "load_study", "load_study_file", "objective_info", "vectorized",
]
