"""Cost models for ML systems: catalogs, the analytical inference model, the serving simulator, accuracy proxy.

``llm_serving_objective`` and ``multi_fidelity`` (objectives/llm_serving.py) turn them into a study's evaluate
function; ``smallest_deployment`` (objectives/serving/capacity.py) finds the smallest deployment meeting a rate.
"""
from typing import Any

__all__ = ["llm_serving_objective", "multi_fidelity", "LLMServingObjective", "MultiFidelityResult",
           "smallest_deployment"]


def __getattr__(name: str) -> Any:
    # the objective imports inference and serving: load it on first use so `from objectives import catalog` stays light
    if name == "smallest_deployment":
        from .serving.capacity import smallest_deployment

        return smallest_deployment
    if name in __all__:
        from . import llm_serving

        return getattr(llm_serving, name)
    raise AttributeError(f"module 'objectives' has no attribute {name!r}")
