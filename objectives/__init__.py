"""Cost models for ML systems: catalogs, the analytical inference model, the serving simulator, accuracy proxy.

``llm_serving_objective`` and ``multi_fidelity`` (objectives/glue.py) turn them into a study's evaluate function.
"""
from typing import Any

__all__ = ["llm_serving_objective", "multi_fidelity", "LLMServingObjective", "MultiFidelityResult"]


def __getattr__(name: str) -> Any:
    # the glue imports inference and serving: load it on first use so `from objectives import catalog` stays light
    if name in __all__:
        from . import glue

        return getattr(glue, name)
    raise AttributeError(f"module 'objectives' has no attribute {name!r}")
