"""Training systems: the catalog's systems (`objectives.catalog.systems`, data in objectives/data/systems.toml).

Kept as the training package's name for them: `System`, `system`, `systems`, `DEFAULT_SCALE_UP` and `SYSTEMS_FILE`
are the catalog's own objects, so training, inference, serving and the spaces read one topology source.
"""
from __future__ import annotations

from objectives.catalog.systems import DEFAULT_SCALE_UP, SYSTEMS_FILE, System, system, systems

__all__ = ["DEFAULT_SCALE_UP", "SYSTEMS_FILE", "System", "system", "systems"]
