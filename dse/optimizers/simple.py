"""Model-free optimizers: ``random`` (seeded sampling) and ``grid`` (every feasible point, in order)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from dse.errors import OptimizerError

from .base import BaseOptimizer, check_int
from .batch import Batch


@dataclasses.dataclass(frozen=True)
class RandomSettings:
    """``batch_size``: configurations per ask by default; ``vectorized_batch_size``: per ask when the objective is
    vectorized and evaluated in this process (a batch then costs little but its storage, which larger batches
    amortize: see docs/engine.md)."""

    batch_size: int = 256
    vectorized_batch_size: int = 1024

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1)
        check_int("vectorized_batch_size", self.vectorized_batch_size, 1)


class RandomOptimizer(BaseOptimizer):
    """Uniform sampling of the feasible space (``space.sample`` with seeds drawn from one seeded generator),
    never repeating a configuration already asked or told."""

    name = "random"
    Settings = RandomSettings

    def default_batch_size(self) -> int:
        return self.config.batch_size

    def vectorized_batch_size(self) -> int:
        return self.config.vectorized_batch_size

    def _ask(self, n: int) -> Batch:
        return self.sample_new(n)


@dataclasses.dataclass(frozen=True)
class GridSettings:
    """``batch_size``: grid rows per ask by default, at most (blocks of a grid are about 1/32 of it, so that
    workers sharing a study split it finely)."""

    batch_size: int = 65536

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1)


class GridOptimizer(BaseOptimizer):
    """Every feasible point of a discrete space, in ``space.grid()`` order, in chunks; then exhausted.

    The grid is built once, on the first ask, and handed out as row slices (no second copy). Rows told before
    they were asked (from storage on resume) are skipped. ``seed`` has no effect (the order is the grid's).

    Workers sharing a study split the grid into fixed blocks of ``block`` rows (the same in every worker: it
    depends only on the space and the settings): with ``claim`` set (``block index -> bool``, through the
    storage), a block is evaluated only by the worker whose claim succeeded, and blocks every row of which was
    told already are not claimed at all.
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
        #: rows per claimed block: about 1/32 of the space, at least 256, at most ``batch_size``
        self.block = int(min(self.config.batch_size, max(256, -(-int(space.size) // 32))))
        #: set by a study whose workers share the grid: block index -> True if this worker may evaluate it
        self.claim: Callable[[int], bool] | None = None
        self._mine: Batch | None = None   # the rest of the claimed block not yet asked

    def default_batch_size(self) -> int:
        return self.block

    def _unseen(self, keys: np.ndarray) -> np.ndarray:
        """Mask of grid rows (at or after the cursor) neither asked nor told: all of them while every configuration
        told was one this optimizer asked (those lie before the cursor), else looked up."""
        return ~self.is_seen(keys) if self.n_foreign else np.ones(len(keys), dtype=bool)

    @property
    def exhausted(self) -> bool:
        if self._grid is not None and self._cursor >= len(self._grid) and not (self._mine and len(self._mine)):
            return True
        return super().exhausted

    def _next_claimed(self) -> Batch | None:
        """The unseen rows of the next block this worker claims (None when the grid is done)."""
        assert self._grid is not None and self.claim is not None
        grid, block = self._grid, self.block
        while self._cursor < len(grid):
            i = self._cursor // block
            self._cursor = min((i + 1) * block, len(grid))
            chunk = grid.iloc[i * block:self._cursor]
            keys = self.encoder.keys(chunk)
            keep = self._unseen(keys)
            if not keep.any() or not self.claim(i):
                continue   # done already, or another worker's
            if not keep.all():
                chunk, keys = chunk.iloc[np.flatnonzero(keep)], keys[keep]
            return Batch(chunk, keys)
        return None

    def _ask(self, n: int) -> Batch:
        if self._grid is None:
            self._grid = self.space.grid().reset_index(drop=True)
        parts: list[Batch] = []
        if self.claim is not None:
            have = 0
            while have < n:
                if self._mine is None or not len(self._mine):
                    self._mine = self._next_claimed()
                    if self._mine is None:
                        break
                chunk, keys = self._mine.frame, self._mine.keys
                take = n - have
                parts.append(Batch(chunk.iloc[:take], keys[:take]))
                have += min(take, len(chunk))
                self._mine = Batch(chunk.iloc[take:], keys[take:])
            return self.concat(parts)
        have = 0
        while have < n and self._cursor < len(self._grid):
            stop = min(self._cursor + (n - have), len(self._grid))
            chunk = self._grid.iloc[self._cursor:stop]
            self._cursor = stop
            keys = self.encoder.keys(chunk)
            keep = self._unseen(keys)
            if not keep.all():
                chunk, keys = chunk.iloc[np.flatnonzero(keep)], keys[keep]
            parts.append(Batch(chunk, keys))
            have += len(chunk)
        return self.concat(parts)
