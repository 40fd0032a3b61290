"""`CarriesModel`: a study's evaluate function that names its model keeps the model's record and brings it into the
worker processes it is pickled to.

A study's worker processes (``study.optimize(..., n_jobs=2)``) start with the shipped catalog only, so a model the
user registered at run time (``catalog.register_model(catalog.model_from_hf_config(...))``) is unknown there by
name. An objective holding the model by name mixes this class in and calls `carry_model` in its constructor; its
record then travels in the pickle and `__setstate__` registers it in the worker's default catalog where that
catalog does not hold that record under that name (the record, not the name, is what the objective costs).

    class MyObjective(CarriesModel):
        def __init__(self, model: str) -> None:
            self.model = model
            self.carry_model()
"""
from __future__ import annotations

from typing import Any

from .errors import CatalogError
from .store import default_catalog
from .types import Model


class CarriesModel:
    """Mixin for an objective with a ``model`` attribute: a catalog name, alias or Hugging Face id (its record is
    carried), or a `Model` / config mapping (pickled as it is: nothing to carry)."""

    model: Any
    #: the record `model` names when the objective was built (None when `model` is not a name)
    record: Model | None = None

    def carry_model(self) -> None:
        """Look the model up now (a clear CatalogError for an unknown name, in the process that builds the
        objective) and keep its record for the worker processes."""
        self.record = default_catalog().model(self.model) if isinstance(self.model, str) else None

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled in a worker process: its default catalog learns the objective's model record where it does
        not hold that record under that name (registered at run time in the process that built the objective)."""
        self.__dict__.update(state)
        rec = state.get("record")
        if rec is None:
            return
        cat = default_catalog()
        try:
            known = cat.model(self.model) == rec
        except CatalogError:
            known = False
        if not known:
            cat.register_model(rec, overwrite=True)


__all__ = ["CarriesModel"]
