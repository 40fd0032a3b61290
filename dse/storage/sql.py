"""SQLStorage: bulk trial storage over SQLAlchemy Core (SQLite by default, PostgreSQL or any SQLAlchemy URL).

Design (see :mod:`dse.storage.base` for the conventions of the interface):

- One transaction per call. On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (SQLAlchemy's
  documented event-hook recipe: the driver's own BEGIN is disabled and ours is emitted), so a writer takes the
  file's write lock up front and never fails half-way with SQLITE_BUSY; reads use a plain deferred ``BEGIN``.
- SQLite runs in WAL mode with ``synchronous=NORMAL`` (a SIGKILL of any process loses no committed transaction
  and cannot corrupt the file) and a busy timeout; on top of that a transaction that still meets "database is
  locked"/"busy" (or, on PostgreSQL, a serialization failure or deadlock) is retried as a whole with jittered
  exponential backoff, so no lock error reaches the user unless the lock is held for ``retry_timeout_s``.
- Trial numbers come from the study row's ``next_number`` counter, advanced by
  ``UPDATE dse_studies SET next_number = next_number + n ... RETURNING next_number`` inside the same transaction
  that inserts the trials: a row lock on PostgreSQL, the file write lock on SQLite. Same code on both.
- JSON columns are TEXT (json.dumps with ``allow_nan=True``), so NaN/inf round-trip; see :mod:`dse.storage.base`.
"""
from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd
from sqlalchemy import case, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from dse.errors import StudyError
from dse.storage.schema import attrs as attrs_table
from dse.storage.schema import studies, trial_blocks, trials
from dse.storage.sql_claims import AttrsAndClaims
from dse.storage.sql_connection import MEMORY, VALID_URLS, _int, mask_url
from dse.storage.sql_trial_reads import TrialReads
from dse.storage.sql_trial_writes import TrialWrites
from dse.storage.values import encode_json as _encode
from dse.storage.values import short as _short

__all__ = ["MEMORY", "VALID_URLS", "SQLStorage", "mask_url"]


class SQLStorage(TrialWrites, TrialReads, AttrsAndClaims):
    """Trials and studies in a SQL database through SQLAlchemy Core.

    Args:
        url: a SQLAlchemy URL (``sqlite:///file.db``, ``postgresql://user:pw@host/db``, ``sqlite://`` in memory).
        busy_timeout_s: SQLite busy timeout (s) each connection waits for a lock before reporting busy.
        retry_timeout_s: how long (s) a transaction that meets a transient lock error is retried before
            a StorageError is raised.

    Raises:
        StorageError: the URL cannot be opened (bad scheme, missing driver, unreachable server, directory not
            writable) or holds a newer schema version than this dse reads.
    """

    # -- studies --------------------------------------------------------------------------------------------------
    def create_study(self, name: str, meta: dict[str, Any]) -> int:
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise StudyError(f"study name {_short(name)} is invalid; valid: a non-empty str of at most 255 characters")
        meta_json = _encode(meta, f"meta of study {name!r}")
        now = time.time()

        def tx(conn: Connection) -> int:
            try:
                return int(
                    conn.execute(
                        studies.insert()
                        .values(name=name, meta=meta_json, next_number=0, created_at=now, updated_at=now)
                        .returning(studies.c.id)
                    ).scalar_one()
                )
            except IntegrityError:
                raise StudyError(
                    f"a study named {name!r} already exists in {self.url}; load it (dse.load_study) or choose "
                    "another name"
                ) from None

        return self._transaction(tx, write=True)

    def get_study(self, name: str) -> dict[str, Any] | None:
        def tx(conn: Connection) -> Any:
            return conn.execute(
                select(studies.c.id, studies.c.name, studies.c.meta, studies.c.created_at).where(studies.c.name == name)
            ).first()

        row = self._transaction(tx, write=False)
        if row is None:
            return None
        return {"id": int(row.id), "name": row.name, "meta": json.loads(row.meta), "created_at": float(row.created_at)}

    def update_study_meta(self, study_id: int, patch: dict[str, Any]) -> None:
        sid = _int(study_id, "study_id")
        _encode(patch, f"meta patch of study {sid}")  # validate before taking any lock

        def tx(conn: Connection) -> None:
            self._lock_study(conn, sid, time.time())
            merged = json.loads(conn.execute(select(studies.c.meta).where(studies.c.id == sid)).scalar_one())
            merged.update(patch)
            conn.execute(update(studies).where(studies.c.id == sid).values(meta=_encode(merged, "meta")))

        self._transaction(tx, write=True)

    def list_studies(self) -> pd.DataFrame:
        def n_in(state: str) -> Any:
            return func.coalesce(func.sum(case((trials.c.state == state, 1), else_=0)), 0)

        stmt = (
            select(
                studies.c.name,
                func.count(trials.c.number).label("n_trials"),
                n_in("complete").label("n_complete"),
                n_in("failed").label("n_failed"),
                n_in("running").label("n_running"),
                studies.c.created_at,
                studies.c.updated_at,
            )
            .select_from(studies.outerjoin(trials, trials.c.study_id == studies.c.id))
            .group_by(studies.c.id, studies.c.name, studies.c.created_at, studies.c.updated_at)
            .order_by(studies.c.name)
        )
        bstmt = select(
            trial_blocks.c.study_id, studies.c.name, func.sum(trial_blocks.c.n_complete), func.sum(trial_blocks.c.n_failed)
        ).join(studies, studies.c.id == trial_blocks.c.study_id).group_by(trial_blocks.c.study_id, studies.c.name)

        def tx(conn: Connection) -> tuple[list[Any], list[Any]]:
            return list(conn.execute(stmt).all()), list(conn.execute(bstmt).all())

        rows, brows = self._transaction(tx, write=False)
        cols = ["name", "n_trials", "n_complete", "n_failed", "n_running", "created_at", "updated_at"]
        df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        for _, name, n_complete, n_failed in brows:   # trials stored in blocks
            at = df["name"] == name
            df.loc[at, "n_complete"] += int(n_complete)
            df.loc[at, "n_failed"] += int(n_failed)
            df.loc[at, "n_trials"] += int(n_complete) + int(n_failed)
        return df.astype({c: "int64" for c in cols[1:5]} | {"created_at": "float64", "updated_at": "float64"})

    def delete_study(self, name: str) -> None:
        def tx(conn: Connection) -> None:
            sid = conn.execute(select(studies.c.id).where(studies.c.name == name)).scalar_one_or_none()
            if sid is None:
                known = conn.execute(select(studies.c.name).order_by(studies.c.name).limit(20)).scalars().all()
                raise StudyError(f"no study named {_short(name)} in {self.url}; existing: {known!r}")
            conn.execute(attrs_table.delete().where(attrs_table.c.study_id == sid))
            conn.execute(trials.delete().where(trials.c.study_id == sid))
            conn.execute(trial_blocks.delete().where(trial_blocks.c.study_id == sid))
            conn.execute(studies.delete().where(studies.c.id == sid))

        self._transaction(tx, write=True)

