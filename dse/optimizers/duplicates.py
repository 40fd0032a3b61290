"""Duplicate elimination, the operator every optimizer is composed with (pymoo's ``DuplicateElimination``, on exact
configuration keys).

Keys are ``Encoder.keys`` (bytes, equal iff the configurations are equal). The operator knows every configuration
told (evaluated in the study, by this optimizer's process or read from storage) and every one asked and not yet
told; a proposal is *new* when it is neither, is not excluded by the caller and is the first of its configuration in
its batch. It is also the study's one evaluation cache: ``was_told`` answers "was this configuration evaluated?",
and, for an optimizer built with ``outcomes=True`` (the Optuna adapter, which tells a sampler's repeat of an
evaluated configuration its known result), ``outcome`` answers "with what result?".
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


class DuplicateElimination:
    """Told and pending configuration keys; masks of new proposals (see the module docstring)."""

    def __init__(self, *, outcomes: bool = False) -> None:
        self.told: set[bytes] = set()
        self.pending: set[bytes] = set()
        self.n_told = 0      # distinct configurations told
        self.n_foreign = 0   # of them, never asked here (resumed, or other workers')
        #: (F row, CV) of each configuration told, as first told (kept only with ``outcomes=True``)
        self.outcomes: dict[bytes, tuple[np.ndarray, float]] | None = {} if outcomes else None

    def __len__(self) -> int:
        """Configurations seen: told, or asked and not yet told."""
        return len(self.told) + len(self.pending)

    def keys(self) -> list[bytes]:
        """Every key told or pending."""
        return [*self.told, *self.pending]

    def was_told(self, keys: np.ndarray) -> np.ndarray:
        """Mask of the ``keys`` told already."""
        told = self.told
        return np.fromiter((k in told for k in keys.tolist()), dtype=bool, count=len(keys))

    def is_seen(self, keys: np.ndarray) -> np.ndarray:
        """Mask of the ``keys`` told or pending."""
        told, pending = self.told, self.pending
        return np.fromiter((k in told or k in pending for k in keys.tolist()), dtype=bool, count=len(keys))

    def new(self, keys: np.ndarray, exclude: Iterable[bytes] | None = None) -> np.ndarray:
        """Mask of the ``keys`` neither seen nor in ``exclude``, each the first of its configuration in ``keys``."""
        told, pending, excl = self.told, self.pending, exclude or set()
        ok = np.fromiter((not (k in told or k in pending or k in excl) for k in keys.tolist()), dtype=np.bool_,
                         count=len(keys))
        return ok & ~pd.Index(keys).duplicated()

    def asked(self, keys: np.ndarray) -> None:
        """Record proposals handed out (pending until told)."""
        self.pending.update(keys.tolist())

    def outcome(self, key: bytes) -> tuple[np.ndarray, float] | None:
        """(F row, CV) the configuration ``key`` was first told with; None if it was not told (or outcomes are not
        kept)."""
        return None if self.outcomes is None else self.outcomes.get(key)

    def tell(self, keys: np.ndarray, F: np.ndarray | None = None, CV: np.ndarray | None = None) -> np.ndarray:
        """Record evaluated configurations (``F``, ``CV``: their results, kept with ``outcomes=True``); return the
        mask of those told for the first time (first occurrence)."""
        klist = keys.tolist()
        new = ~pd.Index(keys).duplicated()  # duplicates inside this batch: keep the first
        if not self.told.isdisjoint(klist):   # (a C-level scan; the common case is a batch of new trials)
            new &= np.fromiter((k not in self.told for k in klist), dtype=bool, count=len(klist))
        pending = len(self.pending)
        self.pending.difference_update(klist)
        self.told.update(klist)
        added = int(new.sum())
        self.n_told += added
        self.n_foreign += added - (pending - len(self.pending))
        if self.outcomes is not None and F is not None and CV is not None and added:
            out = self.outcomes
            for i in np.flatnonzero(new).tolist():
                out[klist[i]] = (F[i].copy(), float(CV[i]))
        return new
