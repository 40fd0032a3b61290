"""``Batch``: configurations asked together, carried from an optimizer's ``ask_batch`` through evaluation
(``Runner.evaluate_batch``) and storage (``BaseStorage.store_batch``) to its ``tell_batch``, with everything
computed about them on the way, row for row:

- ``frame``: the configurations (DataFrame, columns = ``space.names``);
- ``keys``: their ``Encoder.keys`` (bytes, equal iff the configurations are equal): the one key scheme of the
  duplicate-elimination operator (the study's evaluation cache), the projector and the Optuna adapter;
- ``X``: their encoding (``Encoder.encode``), where the ask had it (decoded children, projected grid rows, sampled
  rows), else None; ``BaseOptimizer.encoded`` fills it on first use, so ``tell`` never encodes a batch twice;
- once evaluated (``evaluated``): ``metrics`` (the objective's metrics frame, failed rows included), ``errors``
  (object array, None where the trial succeeded), ``seconds`` (evaluation time per configuration) and ``present``
  (per metric column some per-configuration results lack, the rows holding it; {} when all hold every column);
- once scored (``scored``): ``F`` (n, n_objectives) to minimize (NaN rows for failed trials), ``CV`` (n,) total
  constraint violation (inf for failed trials) and ``feasible`` (n,) bool;
- once stored (``numbered``): ``numbers``, the trial numbers storage gave them.

Each step returns a new ``Batch`` sharing the arrays of the one before (nothing is copied), so a batch asked is
never changed behind the optimizer's back; what a step has not filled in yet is None.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: The per-row array fields besides ``frame``, ``keys`` and ``X`` (``take`` slices each one that is set).
_ROWS = ("errors", "seconds", "F", "CV", "feasible", "numbers")


class Batch:
    """Configurations and what is known about them, row for row (module docstring)."""

    __slots__ = ("CV", "F", "X", "errors", "feasible", "frame", "keys", "metrics", "numbers", "present", "seconds")

    def __init__(self, frame: pd.DataFrame, keys: np.ndarray, X: np.ndarray | None = None, *,
                 metrics: pd.DataFrame | None = None, errors: np.ndarray | None = None,
                 seconds: np.ndarray | None = None, present: dict[str, np.ndarray] | None = None,
                 F: np.ndarray | None = None, CV: np.ndarray | None = None, feasible: np.ndarray | None = None,
                 numbers: np.ndarray | None = None) -> None:
        self.frame = frame
        self.keys = keys
        self.X = X
        self.metrics = metrics
        self.errors = errors
        self.seconds = seconds
        self.present = present
        self.F = F
        self.CV = CV
        self.feasible = feasible
        self.numbers = numbers

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        steps = [s for s, done in (("encoded", self.X is not None), ("evaluated", self.metrics is not None),
                                   ("scored", self.F is not None), ("numbered", self.numbers is not None)) if done]
        return f"Batch({len(self)} configurations{', ' if steps else ''}{', '.join(steps)})"

    @classmethod
    def empty(cls, names: Sequence[str]) -> Batch:
        """No configurations, with the space's columns."""
        return cls(pd.DataFrame({n: pd.Series(dtype=object) for n in names}), np.empty(0, dtype=object))

    def _with(self, **fields: Any) -> Batch:
        out = Batch.__new__(Batch)
        for name in Batch.__slots__:
            setattr(out, name, fields[name] if name in fields else getattr(self, name))
        return out

    # -- filled in on the way from ask to tell
    def evaluated(self, metrics: pd.DataFrame, errors: np.ndarray, seconds: np.ndarray,
                  present: dict[str, np.ndarray] | None = None) -> Batch:
        """This batch with its evaluation: the metrics frame (one row per configuration), errors (None where the
        trial succeeded), seconds per configuration, and the rows holding each metric some results lack."""
        return self._with(metrics=metrics, errors=np.asarray(errors, dtype=object),
                          seconds=np.asarray(seconds, dtype=float), present=present or {})

    def scored(self, F: np.ndarray, CV: np.ndarray, feasible: np.ndarray) -> Batch:
        """This batch with its objective matrix ``F`` (to minimize), violations ``CV`` and feasible flags."""
        return self._with(F=F, CV=CV, feasible=feasible)

    def numbered(self, numbers: Sequence[int] | np.ndarray) -> Batch:
        """This batch with the trial numbers storage gave its rows."""
        return self._with(numbers=np.asarray(numbers, dtype=np.int64))

    @property
    def ok(self) -> np.ndarray:
        """Mask of the rows evaluated without an error (ValueError before ``evaluated``)."""
        if self.errors is None:
            raise ValueError("Batch.ok: the batch is not evaluated yet (Batch.evaluated)")
        return pd.isna(self.errors)   # errors are str, or None where the trial succeeded

    # -- rows
    def take(self, idx: np.ndarray | slice) -> Batch:
        """The rows ``idx`` (positions, a boolean mask or a slice), renumbered from 0, with all that is known
        about them."""
        if not isinstance(idx, slice):
            idx = np.asarray(idx)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
        fields: dict[str, Any] = {name: None if (v := getattr(self, name)) is None else v[idx] for name in _ROWS}
        if self.metrics is not None:
            fields["metrics"] = self.metrics.iloc[idx].reset_index(drop=True)
        if self.present:
            fields["present"] = {k: v[idx] for k, v in self.present.items()}
        return self._with(frame=self.frame.iloc[idx].reset_index(drop=True), keys=self.keys[idx],
                          X=None if self.X is None else self.X[idx], **fields)

    @staticmethod
    def concat(batches: Sequence[Batch]) -> Batch:
        """The non-empty ``batches`` as asked (not yet evaluated) one after the other (the first one as is when it
        is alone); the encoding is kept when every part has it."""
        parts = [b for b in batches if len(b)]
        if any(b.metrics is not None for b in parts):
            raise ValueError("Batch.concat joins batches as asked; these are evaluated already")
        if not parts:
            return Batch(pd.DataFrame(), np.empty(0, dtype=object))
        if len(parts) == 1:
            return parts[0]
        X = None if any(b.X is None for b in parts) else np.vstack([b.X for b in parts if b.X is not None])
        return Batch(pd.concat([b.frame for b in parts], ignore_index=True), np.concatenate([b.keys for b in parts]),
                     X)
