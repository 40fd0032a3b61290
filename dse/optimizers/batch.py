"""``Batch``: configurations asked together, carried unchanged from an optimizer's ``ask_batch`` through evaluation
and storage to its ``tell_batch``, with what the ask already computed about them.

- ``frame``: the configurations (DataFrame, columns = ``space.names``), row for row with
- ``keys``: their ``Encoder.keys`` (bytes, equal iff the configurations are equal): the one key scheme of the
  duplicate-elimination operator (the study's evaluation cache), the projector and the Optuna adapter;
- ``X``: their encoding (``Encoder.encode``), where the ask had it (decoded children, projected grid rows, sampled
  rows), else None; ``BaseOptimizer.encoded`` fills it on first use, so ``tell`` never encodes a batch twice.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


class Batch:
    """Configurations, their keys and (when known) their encoding, row for row (module docstring)."""

    __slots__ = ("X", "frame", "keys")

    def __init__(self, frame: pd.DataFrame, keys: np.ndarray, X: np.ndarray | None = None) -> None:
        self.frame = frame
        self.keys = keys
        self.X = X

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"Batch({len(self)} configurations, encoded={self.X is not None})"

    @classmethod
    def empty(cls, names: Sequence[str]) -> Batch:
        """No configurations, with the space's columns."""
        return cls(pd.DataFrame({n: pd.Series(dtype=object) for n in names}), np.empty(0, dtype=object))

    def take(self, idx: np.ndarray | slice) -> Batch:
        """The rows ``idx`` (positions, a boolean mask or a slice), renumbered from 0."""
        if isinstance(idx, slice):
            rows = self.frame.iloc[idx]
        else:
            idx = np.asarray(idx)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            rows = self.frame.iloc[idx]
        return Batch(rows.reset_index(drop=True), self.keys[idx], None if self.X is None else self.X[idx])

    @staticmethod
    def concat(batches: Sequence[Batch]) -> Batch:
        """The non-empty ``batches`` one after the other (the first one as is when it is alone); the encoding is
        kept when every part has it."""
        parts = [b for b in batches if len(b)]
        if not parts:
            return Batch(pd.DataFrame(), np.empty(0, dtype=object))
        if len(parts) == 1:
            return parts[0]
        X = None if any(b.X is None for b in parts) else np.vstack([b.X for b in parts if b.X is not None])
        return Batch(pd.concat([b.frame for b in parts], ignore_index=True), np.concatenate([b.keys for b in parts]),
                     X)
