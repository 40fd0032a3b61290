"""The storage interface the Study calls. One implementation today: :class:`dse.storage.sql.SQLStorage`.

Conventions shared by every method:

- A study is addressed by the integer id that :meth:`BaseStorage.create_study` returns.
- Trial numbers are 0-based, unique within a study across processes and machines.
- States are ``"running"``, ``"complete"`` and ``"failed"``.
- Timestamps are float epoch seconds (UTC); durations float seconds.
- Parameters, metrics, study meta and attrs are stored as JSON (never pickle). numpy scalars are converted to
  Python numbers. Non-finite floats (NaN, +inf, -inf) in metrics and params survive a round trip: they are written
  with Python's JSON extension tokens ``NaN``/``Infinity``/``-Infinity`` (the columns are TEXT, not a JSON type).
- Every write method is ONE transaction: on any error nothing already stored is altered.
- Errors: :class:`dse.errors.StudyError` for a study name/id/trial number that does not fit, and
  :class:`dse.errors.StorageError` for bad values and databases that cannot be opened or written.
"""
from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from dse.storage.columns import TrialColumns
from dse.storage.table import TrialTable

if TYPE_CHECKING:
    from dse.optimizers.batch import Batch


class BaseStorage(abc.ABC):
    """Persistent store of studies and their trials (see the module docstring for conventions)."""

    #: The storage URL with any password masked (``***``).
    url: str

    # -- studies --------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_study(self, name: str, meta: dict[str, Any]) -> int:
        """Create a study named ``name`` with the JSON object ``meta``; return its id. StudyError if it exists."""

    @abc.abstractmethod
    def get_study(self, name: str) -> dict[str, Any] | None:
        """Return ``{"id", "name", "meta", "created_at"}`` for the study ``name``, or None if there is none."""

    @abc.abstractmethod
    def update_study_meta(self, study_id: int, patch: dict[str, Any]) -> None:
        """Shallow-merge ``patch`` into the study's meta (one transaction)."""

    @abc.abstractmethod
    def list_studies(self) -> pd.DataFrame:
        """One row per study: name, n_trials, n_complete, n_failed, n_running, created_at, updated_at (epoch s)."""

    @abc.abstractmethod
    def delete_study(self, name: str) -> None:
        """Delete the study ``name`` with its trials and attrs. StudyError if there is none."""

    # -- trials ---------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def reserve_trials(self, study_id: int, params: list[dict[str, Any]], worker: str) -> list[int]:
        """Take the next ``len(params)`` trial numbers (contiguous) and insert them as ``running``; return them."""

    @abc.abstractmethod
    def finish_trials(self, study_id: int, results: list[dict[str, Any]]) -> None:
        """Record results of reserved trials.

        Each dict: ``number``, ``state`` (``"complete"`` | ``"failed"``), ``metrics`` (dict of float|str|None,
        None for {}), ``feasible`` (bool|None), ``error`` (str|None), ``finished_at`` (epoch s), ``duration_s`` (s).
        StudyError if a number was never reserved (then nothing is written). A trial already finished or failed by
        :meth:`fail_running` is overwritten: the latest result wins.
        """

    @abc.abstractmethod
    def add_trials(self, study_id: int, rows: list[dict[str, Any]], worker: str) -> list[int]:
        """Insert already-finished trials (fields of :meth:`finish_trials` plus ``params``); return their numbers."""

    @abc.abstractmethod
    def add_columns(self, study_id: int, cols: TrialColumns, worker: str) -> list[int]:
        """:meth:`add_trials` of trials given column by column (validated per column): the bulk path."""

    @abc.abstractmethod
    def finish_columns(self, study_id: int, numbers: Sequence[int], cols: TrialColumns, worker: str) -> None:
        """:meth:`finish_trials` of the reserved trials ``numbers`` (contiguous, as :meth:`reserve_trials` gives
        them) given column by column; StudyError if one of them is not reserved (then nothing is written)."""

    def store_batch(self, study_id: int, batch: Batch, worker: str, *, started_at: float, finished_at: float,
                    numbers: Sequence[int] | None = None) -> Batch:
        """Store an evaluated, scored ``Batch`` (``Batch.evaluated``, ``Batch.scored``) as finished trials, straight
        from its frame, metrics frame, errors, timings and feasible flags: the reserved trials ``numbers``
        (:meth:`finish_columns`), else new ones (:meth:`add_columns`); return it with its trial numbers."""
        cols = TrialColumns.of_batch(batch, started_at=started_at, finished_at=finished_at)
        if numbers is None:
            numbers = self.add_columns(study_id, cols, worker)
        else:
            self.finish_columns(study_id, numbers, cols, worker)
        return batch.numbered(numbers)

    @abc.abstractmethod
    def load_table(
        self, study_id: int, *, states: Sequence[str] | None = None, min_number: int | None = None
    ) -> TrialTable:
        """The trials of :meth:`load_trials` expanded: one column per field, per parameter and per metric."""

    @abc.abstractmethod
    def load_trials(
        self, study_id: int, *, states: Sequence[str] | None = None, min_number: int | None = None
    ) -> pd.DataFrame:
        """Trials sorted by number: number (int64), state (str), params (dict), metrics (dict, {} while running),
        feasible (object: True/False/None), error (str/None), worker (str/None), started_at, finished_at,
        duration_s (float64, NaN when unknown). ``states`` keeps only those states; ``min_number`` numbers >= it."""

    @abc.abstractmethod
    def trials_version(self, study_id: int) -> float:
        """A stamp every write to the study advances (its ``updated_at``, epoch s): equal stamps, equal trials."""

    @abc.abstractmethod
    def count_trials(self, study_id: int, states: Sequence[str] | None = None) -> int:
        """Number of trials of the study, optionally only those in ``states``."""

    @abc.abstractmethod
    def fail_running(
        self,
        study_id: int,
        *,
        numbers: Sequence[int] | None = None,
        workers: Sequence[str] | None = None,
        reason: str,
    ) -> list[dict[str, Any]]:
        """Mark matching ``running`` trials failed with ``reason``; return their ``{"number", "params"}``."""

    @abc.abstractmethod
    def running_workers(self, study_id: int) -> list[str]:
        """Distinct worker ids that hold ``running`` trials, sorted."""

    # -- attrs ----------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def set_attrs(self, study_id: int, attrs: dict[str, Any]) -> None:
        """Set (insert or replace) small JSON key-values of the study (one transaction)."""

    @abc.abstractmethod
    def get_attrs(self, study_id: int) -> dict[str, Any]:
        """All key-values set with :meth:`set_attrs` (claims excluded)."""

    # -- claims: workers of one study split its work --------------------------------------------------------------
    @abc.abstractmethod
    def claim(self, study_id: int, key: str, worker: str) -> bool:
        """Claim the unit of work ``key`` for ``worker``, atomically: True if this call took it (or ``worker``
        already held it), False if another worker holds it."""

    @abc.abstractmethod
    def claims(self, study_id: int) -> dict[str, str]:
        """Claimed keys -> the worker holding each."""

    @abc.abstractmethod
    def release_claims(self, study_id: int, keys: Sequence[str]) -> None:
        """Drop the claims ``keys`` (a crashed or interrupted worker's), so that other workers may take them."""

    # -- lifetime -------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. The object must not be used afterwards."""

    def __enter__(self) -> BaseStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
