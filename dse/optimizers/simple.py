"""Model-free optimizers: ``random`` (seeded sampling) and ``grid`` (every feasible point, in order)."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from dse.errors import OptimizerError

from .base import BaseOptimizer, Batch, check_int


@dataclasses.dataclass(frozen=True)
class RandomSettings:
    """``batch_size``: configurations per ask by default."""

    batch_size: int = 256

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1)


class RandomOptimizer(BaseOptimizer):
    """Uniform sampling of the feasible space (``space.sample`` with seeds drawn from one seeded generator),
    never repeating a configuration already asked or told."""

    name = "random"
    Settings = RandomSettings

    def default_batch_size(self) -> int:
        return self.config.batch_size

    def _ask(self, n: int) -> Batch:
        return self.sample_new(n)


@dataclasses.dataclass(frozen=True)
class GridSettings:
    """``batch_size``: grid rows per ask by default."""

    batch_size: int = 65536

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1)


class GridOptimizer(BaseOptimizer):
    """Every feasible point of a discrete space, in ``space.grid()`` order, in chunks; then exhausted.

    The grid is built once, on the first ask, and handed out as row slices (no second copy). Rows told before
    they were asked (from storage on resume) are skipped. ``seed`` has no effect (the order is the grid's).
    """

    name = "grid"
    Settings = GridSettings

    def __init__(self, space: Any, n_objectives: int, *, seed: int | None = None, **settings: Any) -> None:
        if not space.is_discrete:
            raise OptimizerError("optimizer 'grid' needs a discrete space (Categorical, Int, or Float with step=); "
                                 "use 'nsga2', 'tpe' or 'random' for continuous parameters")
        super().__init__(space, n_objectives, seed=seed, **settings)
        self._grid: pd.DataFrame | None = None
        self._cursor = 0

    def default_batch_size(self) -> int:
        return self.config.batch_size

    @property
    def exhausted(self) -> bool:
        if self._grid is not None and self._cursor >= len(self._grid):
            return True
        return super().exhausted

    def _ask(self, n: int) -> Batch:
        if self._grid is None:
            self._grid = self.space.grid().reset_index(drop=True)
        parts: list[Batch] = []
        have = 0
        while have < n and self._cursor < len(self._grid):
            stop = min(self._cursor + (n - have), len(self._grid))
            chunk = self._grid.iloc[self._cursor:stop]
            self._cursor = stop
            keys = self.encoder.keys(chunk)
            keep = ~self.is_seen(keys)
            if not keep.all():
                chunk, keys = chunk.iloc[np.flatnonzero(keep)], keys[keep]
            parts.append((chunk, keys))
            have += len(chunk)
        return self.concat(parts)
